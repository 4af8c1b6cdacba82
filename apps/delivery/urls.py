"""Provider callbacks under /delivery/ and the self-tracking links under /t/ (short: they are in every
tracked email). Included at the root by config/urls.py."""

from django.urls import path

from apps.delivery import views

urlpatterns = [
    path(
        "delivery/<slug:client_slug>/<int:channel_id>/anymail/<slug:esp>/tracking/",
        views.anymail_tracking,
        name="delivery-anymail",
    ),
    path("delivery/<slug:client_slug>/<int:channel_id>/twilio/", views.twilio_status, name="delivery-twilio"),
    path(
        "delivery/<slug:client_slug>/<int:channel_id>/twilio/inbound/",
        views.twilio_inbound,
        name="delivery-twilio-inbound",
    ),
    path(
        "delivery/<slug:client_slug>/<int:channel_id>/webhook/",
        views.webhook_receipt,
        name="delivery-webhook",
    ),
    path("t/c/<str:token>", views.tracked_click, name="tracking-click"),
    path("t/o/<str:token>.gif", views.tracked_open, name="tracking-open"),
]
