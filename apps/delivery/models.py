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
    # Neither the client nor the message has an index of its own: delivery_event_once and
    # delivery_event_message lead with them, and each stored event writes every index.
    client = models.ForeignKey(
        "clients.Client", on_delete=models.CASCADE, related_name="delivery_events", db_index=False
    )
    channel = models.ForeignKey(
        "clients.Channel", null=True, blank=True, on_delete=models.SET_NULL, related_name="delivery_events"
    )
    message = models.ForeignKey(
        "campaigns.Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="delivery_events",
        db_index=False,
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
    # When the retention purge (or an erasure) emptied `raw` and cut `url` down (apps.subscriptions).
    personal_data_purged_at = models.DateTimeField(null=True, blank=True)

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
            # The retention purge: a client's events still holding their payload, oldest first.
            models.Index(
                fields=["client", "received_at", "id"],
                name="delivery_event_personal_data",
                condition=models.Q(personal_data_purged_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} from {self.provider} ({self.provider_message_id or 'no id'})"


# Reporting to Optimove (apps.delivery.reporting) ----------------------------------------------------


class ReportKind(models.TextChoices):
    METRICS = "metrics", "UpdateCampaignMetrics"
    INTERACTIONS = "interactions", "UpdateCampaignInteractions"


class OptimoveReport(models.Model):
    """One reporting call to Optimove for one run and its outcome: the run's report timeline.

    `items` is the number of metrics in the body, or of customer ids for interactions (never the ids)."""

    run = models.ForeignKey(
        "campaigns.CampaignRun", on_delete=models.CASCADE, related_name="optimove_reports"
    )
    kind = models.CharField(max_length=16, choices=ReportKind.choices)
    sent_at = models.DateTimeField()
    items = models.PositiveIntegerField()
    # What an interactions call was about.
    event_id = models.PositiveSmallIntegerField(null=True, blank=True)
    template_id = models.BigIntegerField(null=True, blank=True)
    interaction_date = models.DateField(null=True, blank=True)
    ok = models.BooleanField()
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-sent_at", "-id"]
        indexes = [models.Index(fields=["run", "sent_at"], name="optimove_report_run")]

    def __str__(self) -> str:
        outcome = "accepted" if self.ok else "failed"
        return f"{self.get_kind_display()} for run {self.run_id}: {self.items} item(s) {outcome}"


class InteractionCursor(models.Model):
    """Which of one message's interactions Optimove has accepted: bit `1 << EventID` of `reported`.

    The interaction cursor is kept per message rather than as a time or id watermark per run, because
    no watermark is exact here: the message's columns hold when an event happened (the earliest one,
    which a late callback can move back), providers call back minutes or hours late and out of order,
    and ids are not committed in order. "New since the last report" is therefore "the column is set
    and its bit is not", which cannot skip a late event nor repeat an accepted one. The bits are set in
    the transaction that records the accepted call (`OptimoveReport`), only after Optimove accepted it."""

    message = models.OneToOneField(
        "campaigns.Message", primary_key=True, on_delete=models.CASCADE, related_name="interaction_cursor"
    )
    reported = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"interactions of message {self.message_id}: {self.reported:#b}"
