from django.urls import path

from apps.optimove import views

urlpatterns = [
    path("listener/<slug:client_slug>/<str:channel>/", views.listener, name="optimove-listener"),
]
