"""What providers tell us happened to a message, and what we told Optimove.

A `DeliveryEvent` is stored once per provider event (its `dedupe_key` is unique per client), linked to
its `Message` through the provider's message id when one matches; events for messages we cannot find
are kept (message empty) and shown in the admin. The message's own delivery columns move only forward:
each records the first time, and `delivery_state` only ever rises in rank.
"""

from __future__ import annotations

from django.db import models


class DeliveryEventType(models.TextChoices):
    DELIVERED = "delivered", "Delivered"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Complained (spam report)"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    UNDELIVERED = "undelivered", "Not delivered"  # rejected, dropped or failed after sending


class DeliveryEvent(models.Model):
    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE, related_name="delivery_events")
    channel = models.ForeignKey(
        "clients.Channel", null=True, blank=True, on_delete=models.SET_NULL, related_name="delivery_events"
    )
    message = models.ForeignKey(
        "campaigns.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="delivery_events"
    )
    provider = models.CharField(max_length=64)
    provider_message_id = models.CharField(max_length=255, blank=True, default="")
    event = models.CharField(max_length=16, choices=DeliveryEventType.choices)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The provider's event id when it has one, else provider message id + event + time: a provider
    # retrying its callback finds its event stored and changes nothing.
    dedupe_key = models.CharField(max_length=128)
    url = models.TextField(blank=True, default="")  # the link, for a click
    raw = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["client", "dedupe_key"], name="delivery_event_once"),
        ]
        indexes = [
            models.Index(fields=["message", "event"], name="delivery_event_message"),
            models.Index(
                fields=["client", "received_at"],
                name="delivery_event_unmatched",
                condition=models.Q(message__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} from {self.provider} ({self.provider_message_id or 'no id'})"
