from django.urls import path

from apps.subscriptions import views_sync
from apps.subscriptions.callbacks import CALLBACK_URL_NAME

urlpatterns = [
    path("optimove/attributes-callback/", views_sync.attributes_callback, name=CALLBACK_URL_NAME),
]
