"""Campaign runs and their messages. The database is the truth; the queue is only a wake-up call."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from apps.core.models import TimestampedModel


class RunKind(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    REALTIME = "realtime", "Real-time"


class RunState(models.TextChoices):
    HELD = "held", "Held until clearance"
    PAGING = "paging", "Fetching the audience"
    SENDING = "sending", "Sending"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


ACTIVE_RUN_STATES = (RunState.PAGING, RunState.SENDING)


class CampaignRun(TimestampedModel):
    """One campaign on one channel of one client, whatever notification started it."""

    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE, related_name="runs")
    channel = models.ForeignKey("clients.Channel", on_delete=models.CASCADE, related_name="runs")
    campaign_id = models.BigIntegerField("Optimove CampaignID")
    kind = models.CharField(max_length=16, choices=RunKind.choices, default=RunKind.SCHEDULED)
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.PAGING, db_index=True)
    # The state to go back to when a paused run resumes.
    resume_state = models.CharField(max_length=16, choices=RunState.choices, blank=True, default="")
    started_by_event_type = models.PositiveSmallIntegerField(null=True, blank=True)
    hold_until = models.DateTimeField(null=True, blank=True)
    # Attribute names requested on every page, fixed when paging starts so all pages agree.
    attributes = models.JSONField(default=list, blank=True)
    # Paging cursor: the next $skip. It moves in the same transaction as the page's rows.
    cursor_skip = models.PositiveIntegerField(default=0)
    pages_fetched = models.PositiveIntegerField(default=0)
    fetched_count = models.PositiveIntegerField(default=0)
    paging_done = models.BooleanField(default=False)
    paging_attempts = models.PositiveSmallIntegerField(default=0)
    last_progress_at = models.DateTimeField(null=True, blank=True)
    last_dispatched_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "channel", "campaign_id"], name="run_unique_per_campaign"
            ),
        ]
        indexes = [models.Index(fields=["client", "campaign_id"], name="run_client_campaign")]

    def __str__(self) -> str:
        return f"campaign {self.campaign_id} on {self.channel_id}"


class MessageStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    QUEUED = "queued", "Queued for sending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"


FINAL_MESSAGE_STATUSES = (
    MessageStatus.SENT,
    MessageStatus.FAILED,
    MessageStatus.SKIPPED,
    MessageStatus.CANCELLED,
)


class Message(models.Model):
    """One customer's message in a run. Unique per run and idempotency key (which for a scheduled
    campaign is derived from the customer, so a page stored twice adds nothing)."""

    # No index of its own: message_run_status and message_unique_per_run both lead with the run, and every
    # index is written again each time a message moves on (four times a message).
    run = models.ForeignKey(CampaignRun, on_delete=models.CASCADE, related_name="messages", db_index=False)
    customer_id = models.CharField(max_length=128)
    template_id = models.BigIntegerField()
    idempotency_key = models.CharField(max_length=64)
    send_at = models.DateTimeField()
    # When it may be released next: send_at at first, later the retry time.
    due_at = models.DateTimeField()
    attributes = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    queued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True, default="")
    error = models.TextField(blank=True, default="")
    # [{"status": ..., "at": iso, "reason": ...}], appended by the same UPDATE that moves the status.
    history = models.JSONField(default=list)
    # What providers reported after sending (apps.delivery): the first time of each, never undone, and
    # the furthest state reached (a late "delivered" after "opened" does not step back).
    delivery_state = models.CharField(max_length=16, blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    # When the retention purge (or an erasure) cleared the customer's attributes and scrubbed error and
    # history (apps.subscriptions.retention); ids, states, times and delivery columns stay for reporting.
    personal_data_purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "idempotency_key"], name="message_unique_per_run"),
        ]
        indexes = [
            # The dispatcher's claim: due pending rows of one run, oldest first (due_at, then id). With
            # the id in the index, a claim reads its batch straight from the index; without it, a
            # campaign all due at once had every claim read and sort all its pending rows (150 ms a
            # claim at 200,000 pending, growing with the campaign).
            models.Index(
                fields=["run", "due_at", "id"], name="message_pending_due_id", condition=Q(status="pending")
            ),
            models.Index(fields=["run", "status"], name="message_run_status"),
            models.Index(fields=["customer_id"], name="message_customer"),
            # Provider callbacks find their message by the provider's id.
            models.Index(
                fields=["provider_message_id"],
                name="message_provider_id",
                condition=~Q(provider_message_id=""),
            ),
            # Reporting: what each run sent in the last seven days.
            models.Index(fields=["run", "sent_at"], name="message_run_sent", condition=Q(status="sent")),
            # The sweeper's look for rows stuck in flight.
            models.Index(
                fields=["status", "queued_at"],
                name="message_in_flight",
                condition=Q(status__in=["queued", "sending"]),
            ),
            # The retention purge: a run's finished messages still holding personal data, oldest first.
            # Only finished rows enter it, so the send path's pending/queued/sending updates skip it.
            models.Index(
                fields=["run", "send_at", "id"],
                name="message_personal_data",
                condition=Q(
                    personal_data_purged_at__isnull=True,
                    status__in=["sent", "failed", "skipped", "cancelled"],
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} to customer {self.customer_id}"


class CampaignHold(TimestampedModel):
    """EventTypeID 5: the campaign's runs wait until `hold_until` (ClearanceRequiredBy)."""

    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE, related_name="campaign_holds")
    campaign_id = models.BigIntegerField()
    hold_until = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "campaign_id"], name="hold_unique_per_campaign")
        ]


class CampaignCancellation(TimestampedModel):
    """EventTypeID 4: the campaign was cancelled; a run that starts later starts cancelled."""

    client = models.ForeignKey(
        "clients.Client", on_delete=models.CASCADE, related_name="campaign_cancellations"
    )
    campaign_id = models.BigIntegerField()
    customers_recorded = models.BooleanField(default=False)
    error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "campaign_id"], name="cancellation_unique_per_campaign")
        ]


class CancelledCustomer(models.Model):
    """A customer GetCanceledCampaignCustomers listed for a cancelled campaign."""

    cancellation = models.ForeignKey(CampaignCancellation, on_delete=models.CASCADE, related_name="customers")
    customer_id = models.CharField(max_length=128)
    action_id = models.CharField(max_length=64, blank=True, default="")
    promo_code = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cancellation", "customer_id"], name="cancelled_customer_unique")
        ]
        # The retention purge blanks promo codes; rows without one leave this index.
        indexes = [
            models.Index(
                fields=["cancellation", "id"], name="cancelled_customer_promo", condition=~Q(promo_code="")
            )
        ]

    def __str__(self) -> str:
        return f"customer {self.customer_id}"
