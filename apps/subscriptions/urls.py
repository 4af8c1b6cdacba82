"""The customer-facing unsubscribe pages. Included at the root by config/urls.py.

Under /t/u/, beside the tracking links (/t/c/, /t/o/): click tracking leaves the platform's own /t/
links alone, so the link in an email is never rewritten into a click redirect. The client and channel
in the path must match the ones sealed in the token.
"""

from django.urls import path

from apps.subscriptions import views

urlpatterns = [
    path(
        "t/u/<slug:client_slug>/<int:channel_id>/<str:token>",
        views.unsubscribe_page,
        name="subscriptions-unsubscribe",
    ),
    path(
        "t/u/<slug:client_slug>/<int:channel_id>/<str:token>/one-click",
        views.unsubscribe_one_click,
        name="subscriptions-one-click",
    ),
]
