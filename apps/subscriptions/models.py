from __future__ import annotations

from django.db import models
from django.db.models import Q

from apps.core.models import TimestampedModel


class ConsentStatus(models.TextChoices):
    OPTED_IN = "opted_in", "Opted in"
    OPTED_OUT = "opted_out", "Opted out"
    UNKNOWN = "unknown", "Unknown"


class ConsentSource(models.TextChoices):
    UNSUBSCRIBE_LINK = "unsubscribe_link", "Unsubscribe link"
    ONE_CLICK = "one_click", "One-click unsubscribe (List-Unsubscribe-Post)"
    SMS_KEYWORD = "sms_keyword", "SMS keyword reply"
    PROVIDER_UNSUBSCRIBE = "provider_unsubscribe", "Provider unsubscribe event"
    PROVIDER_COMPLAINT = "provider_complaint", "Provider complaint event"
    ADMIN = "admin", "Admin"
    CSV_IMPORT = "csv_import", "CSV import"
    API = "api", "Client API"


class Subscription(TimestampedModel):
    """A customer's current opt-in state on one channel. Checked at the moment of every send; every
    change is kept as a SubscriptionChange, and `sync_version > synced_version` means Optimove has not
    yet accepted the current state."""

    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE, related_name="subscriptions")
    channel = models.ForeignKey("clients.Channel", on_delete=models.CASCADE, related_name="subscriptions")
    customer_id = models.CharField(max_length=128)
    status = models.CharField(max_length=16, choices=ConsentStatus.choices, default=ConsentStatus.UNKNOWN)
    source = models.CharField(max_length=32, choices=ConsentSource.choices)
    changed_at = models.DateTimeField()
    # Sync to Optimove: bumped on every change; the sync records the version Optimove accepted, so a
    # change made while a call is in flight is pushed again rather than lost.
    sync_version = models.PositiveIntegerField(default=1)
    synced_version = models.PositiveIntegerField(default=0)
    sync_error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "customer_id"], name="subscription_unique_per_channel"
            ),
        ]
        indexes = [
            models.Index(fields=["client", "customer_id"], name="subscription_client_customer"),
            models.Index(
                fields=["channel", "id"],
                name="subscription_sync_pending",
                condition=Q(sync_version__gt=models.F("synced_version")),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.status} on channel {self.channel_id}"


class SubscriptionChange(models.Model):
    """One change of a customer's opt-in state: the history that proves an opt-out. `detail` names the
    evidence (a keyword, a provider event id, an admin user) and never holds an address."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="changes")
    status = models.CharField(max_length=16, choices=ConsentStatus.choices)
    source = models.CharField(max_length=32, choices=ConsentSource.choices)
    detail = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.status} by {self.source} at {self.created_at:%Y-%m-%d %H:%M}"


# The consent sync's own records (apps.subscriptions.sync) live in their own module; importing them here
# registers them with the app.
from apps.subscriptions.models_sync import (  # noqa: E402, F401
    ConsentAttribute,
    ConsentSyncCall,
    ConsentSyncRejection,
)
