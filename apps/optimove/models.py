from __future__ import annotations

from django.db import models

from apps.core.models import TimestampedModel


class Notification(TimestampedModel):
    """A notification Optimove POSTed to a listener, as received, with what the platform did about it.

    Real-time campaigns write one per trigger, hundreds a second, so every index here is paid for on the
    listener's path: only those a reader needs. The channel and the run have none; deleting a channel or
    a run (rare, by hand) reads the table to clear their references. The admin's filters on what was not
    acted on and on the event types other than 11 have partial indexes that triggers never enter."""

    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(
        "clients.Channel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
        db_index=False,
    )
    url_channel = models.CharField("channel named by the URL", max_length=32, blank=True, default="")
    event_type_id = models.IntegerField(null=True, blank=True)
    campaign_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    body = models.JSONField()
    acted = models.BooleanField(default=False)
    outcome = models.CharField(max_length=300, blank=True, default="")
    run = models.ForeignKey(
        "campaigns.CampaignRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
        db_index=False,
    )

    # When the retention purge (or an erasure) cut a real-time trigger's body down to its own fields,
    # dropping the personalization values (apps.subscriptions.retention).
    personal_data_purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The admin's "acted: no" and its event types other than real-time triggers.
            models.Index(
                fields=["created_at"], name="notification_not_acted", condition=models.Q(acted=False)
            ),
            models.Index(
                fields=["event_type_id", "created_at"],
                name="notification_event_type",
                condition=~models.Q(event_type_id=11),
            ),
            # The retention purge: a client's real-time triggers still holding personalization, oldest first.
            models.Index(
                fields=["client", "created_at", "id"],
                name="notification_personal_data",
                condition=models.Q(personal_data_purged_at__isnull=True, event_type_id=11),
            ),
        ]

    def __str__(self) -> str:
        return f"event {self.event_type_id} campaign {self.campaign_id}"
