from __future__ import annotations

from django.db import models

from apps.core.models import TimestampedModel


class OptOut(TimestampedModel):
    """A customer who must not receive messages on a channel. Checked at the moment of sending."""

    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE, related_name="opt_outs")
    channel = models.ForeignKey("clients.Channel", on_delete=models.CASCADE, related_name="opt_outs")
    customer_id = models.CharField(max_length=128)
    source = models.CharField(max_length=64, default="admin")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "customer_id"], name="optout_unique_per_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} opted out of {self.channel_id}"
