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

    # When the retention purge (or an erasure) cut a real-time trigger's body down to its own fields,
    # dropping the personalization values (apps.subscriptions.retention).
    personal_data_purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The retention purge: a client's real-time triggers still holding personalization, oldest first.
            models.Index(
                fields=["client", "created_at", "id"],
                name="notification_personal_data",
                condition=models.Q(personal_data_purged_at__isnull=True, event_type_id=11),
            )
        ]

    def __str__(self) -> str:
        return f"event {self.event_type_id} campaign {self.campaign_id}"
