from __future__ import annotations

from django.db import models

from apps.core.models import TimestampedModel


class Notification(TimestampedModel):
    """A notification Optimove POSTed to a listener, as received, with what the platform did about it."""

    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(
        "clients.Channel", null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    url_channel = models.CharField("channel named by the URL", max_length=32, blank=True, default="")
    event_type_id = models.IntegerField(null=True, blank=True, db_index=True)
    campaign_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    body = models.JSONField()
    acted = models.BooleanField(default=False, db_index=True)
    outcome = models.CharField(max_length=300, blank=True, default="")
    run = models.ForeignKey(
        "campaigns.CampaignRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"event {self.event_type_id} campaign {self.campaign_id}"
