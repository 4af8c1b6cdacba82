"""The client API's routes, under /api/v1/ (config/urls.py). `bulk` comes first: a customer whose id is
literally "bulk" cannot be read or set one by one, only through the bulk endpoint."""

from django.urls import path

from apps.subscriptions import api

PREFIX = "clients/<slug:client_slug>/channels/<int:channel_id>/subscriptions/"

urlpatterns = [
    path(f"{PREFIX}bulk", api.SubscriptionBulkApi.as_view(), name="api-subscriptions-bulk"),
    # <path:> so an id holding a slash (sent as %2F) still reaches the view.
    path(f"{PREFIX}<path:customer_id>", api.SubscriptionApi.as_view(), name="api-subscription"),
]
