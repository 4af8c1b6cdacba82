"""What the sandbox knows and what it has received, kept so tests and people can inspect it.

The credentials here are fake ones made for the stand-in, not client secrets, so they are stored plainly.
"""

from __future__ import annotations

import random
import secrets

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from apps.core.logging import redact
from apps.core.models import TimestampedModel


def new_api_key() -> str:
    return secrets.token_urlsafe(24)


def new_password() -> str:
    return secrets.token_urlsafe(12)


def new_seed() -> int:
    return random.randint(1, 999_999)


def default_fault_statuses() -> list[int]:
    return [429, 500, 502, 503]


def validate_fault_statuses(value: object) -> None:
    if not isinstance(value, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and 400 <= s <= 599 for s in value
    ):
        raise ValidationError("Give a list of HTTP error statuses between 400 and 599, e.g. [429, 500, 503].")


def default_template_ids() -> list[int]:
    return [1]


def default_send_offsets() -> list[int]:
    return [0]


class SandboxAccount(TimestampedModel):
    """One fake Optimove account: its key, its legacy login and how badly it behaves."""

    name = models.CharField(max_length=100, unique=True)
    api_key = models.CharField("X-API-KEY", max_length=200, unique=True, default=new_api_key)
    username = models.CharField("user name (legacy login)", max_length=200, blank=True, default="")
    password = models.CharField("password (legacy login)", max_length=200, blank=True, default=new_password)
    enforce_rate_limit = models.BooleanField(default=True)
    fault_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of calls (0..1) answered with a random status from the fault statuses.",
    )
    fault_statuses = models.JSONField(
        default=default_fault_statuses,
        blank=True,
        validators=[validate_fault_statuses],
        help_text="HTTP statuses a faulty call answers.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(fault_rate__gte=0.0) & models.Q(fault_rate__lte=1.0),
                name="sandbox_account_fault_rate_0_1",
            )
        ]

    def __str__(self) -> str:
        return self.name


class SandboxListener(TimestampedModel):
    """A listener registered with the sandbox through RegisterEventListener."""

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="listeners")
    event_type_id = models.PositiveSmallIntegerField()
    channel_id = models.PositiveIntegerField(null=True, blank=True)
    listener_url = models.URLField(max_length=2000)

    class Meta:
        ordering = ["account", "event_type_id", "channel_id"]
        constraints = [
            # Registered without a channel (types 4 and 5) counts as one slot too.
            models.UniqueConstraint(
                fields=["account", "event_type_id", "channel_id"],
                name="sandbox_listener_unique",
                nulls_distinct=False,
            )
        ]

    def __str__(self) -> str:
        return f"{self.account} type {self.event_type_id} channel {self.channel_id}"

    @property
    def display_url(self) -> str:
        return redact(self.listener_url)


class SandboxTemplate(TimestampedModel):
    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="templates")
    channel_id = models.PositiveIntegerField()
    template_id = models.PositiveIntegerField()
    template_name = models.CharField(max_length=500)

    class Meta:
        ordering = ["account", "channel_id", "template_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "channel_id", "template_id"], name="sandbox_template_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel_id}/{self.template_id} {self.template_name}"


class SandboxApp(TimestampedModel):
    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="apps")
    channel_id = models.PositiveIntegerField()
    app_id = models.CharField(max_length=200)
    app_name = models.CharField(max_length=500)

    class Meta:
        ordering = ["account", "channel_id", "app_id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "channel_id", "app_id"], name="sandbox_app_unique")
        ]

    def __str__(self) -> str:
        return f"{self.channel_id}/{self.app_id} {self.app_name}"


class SandboxMetric(TimestampedModel):
    """The latest total reported for one (channel, campaign, template, metric)."""

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="metrics")
    channel_id = models.PositiveIntegerField()
    campaign_id = models.PositiveIntegerField()
    template_id = models.PositiveIntegerField()
    metric_id = models.PositiveSmallIntegerField()
    metric_value = models.BigIntegerField()

    class Meta:
        ordering = ["account", "channel_id", "campaign_id", "template_id", "metric_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "channel_id", "campaign_id", "template_id", "metric_id"],
                name="sandbox_metric_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel_id}/{self.campaign_id}/{self.template_id} metric {self.metric_id}"


class SandboxInteraction(models.Model):
    """One UpdateCampaignInteractions call, as received."""

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="interactions")
    campaign_id = models.PositiveIntegerField()
    channel_id = models.PositiveIntegerField()
    interaction_date = models.DateField()
    template_id = models.PositiveIntegerField()
    event_id = models.PositiveSmallIntegerField()
    recipient_group_id = models.PositiveIntegerField()
    app_id = models.CharField(max_length=200, blank=True, default="")
    customer_ids = models.JSONField(default=list)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.channel_id}/{self.campaign_id} event {self.event_id} ({len(self.customer_ids)})"


class SandboxPreference(models.Model):
    """One SetCustomerChannelPreference call, as received."""

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="preferences")
    channel_id = models.PositiveIntegerField()
    communication_mode = models.IntegerField()
    app_id = models.CharField(max_length=200, blank=True, default="")
    customer_ids = models.JSONField(default=list)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.channel_id} mode {self.communication_mode} ({len(self.customer_ids)})"


class SandboxAttribute(TimestampedModel):
    """A customer attribute created through AddCustomerAttribute."""

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="attributes")
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=50)
    default_value = models.CharField(max_length=500, blank=True, default="")
    callback_url = models.URLField(max_length=2000, blank=True, default="")

    class Meta:
        ordering = ["account", "name"]
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="sandbox_attribute_unique")]

    def __str__(self) -> str:
        return self.name


class CallbackStatus(models.TextChoices):
    NONE = "none", "No callback URL"
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class SandboxAttributeUpdate(TimestampedModel):
    """One UpdateCustomerAttributes call and the callback it produced."""

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="attribute_updates")
    request_id = models.UUIDField(unique=True)
    customers = models.JSONField(default=list, help_text="CustomerNewAttributesValuesList as received.")
    callback_url = models.URLField(max_length=2000, blank=True, default="")
    is_success = models.BooleanField()
    errors = models.JSONField(default=list, blank=True)
    callback_status = models.CharField(max_length=16, choices=CallbackStatus.choices)
    callback_http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    callback_error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return str(self.request_id)

    @property
    def display_callback_url(self) -> str:
        return redact(self.callback_url)


class SandboxCall(models.Model):
    """A light log of every call the sandbox answered: enough to count calls in tests."""

    account = models.ForeignKey(
        SandboxAccount, on_delete=models.SET_NULL, null=True, blank=True, related_name="calls"
    )
    function = models.CharField(max_length=100, db_index=True)
    method = models.CharField(max_length=10)
    status = models.PositiveSmallIntegerField()
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.method} {self.function} {self.status}"


class SandboxCampaign(TimestampedModel):
    """A campaign whose customers are generated from a seed on demand, never stored."""

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="campaigns")
    campaign_id = models.PositiveIntegerField()
    channel_id = models.PositiveIntegerField()
    size = models.PositiveIntegerField(help_text="Number of customers.")
    seed = models.PositiveIntegerField(default=new_seed)
    template_ids = models.JSONField(default=default_template_ids)
    send_offsets_seconds = models.JSONField(
        default=default_send_offsets, help_text="Each customer is scheduled at base time + one of these."
    )
    attributes = models.JSONField(
        default=dict, blank=True, help_text='Attribute name → kind, e.g. {"Email": "email"}.'
    )
    base_time = models.DateTimeField(default=timezone.now)
    cancelled_count = models.PositiveIntegerField(
        default=0, help_text="GetCanceledCampaignCustomers lists this many of the first customers."
    )
    # What GetCampaignDetails answers.
    target_group_id = models.PositiveIntegerField(default=1)
    campaign_type = models.CharField(max_length=100, default="Scheduled")
    duration = models.PositiveIntegerField(default=1)
    lead_time = models.PositiveIntegerField(default=0)
    notes = models.CharField(max_length=500, blank=True, default="")
    is_multi_channel = models.BooleanField(default=False)
    is_recurrence = models.BooleanField(default=False)
    status = models.CharField(max_length=100, default="Executed")
    error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["account", "campaign_id", "channel_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "campaign_id", "channel_id"], name="sandbox_campaign_unique"
            )
        ]

    def __str__(self) -> str:
        return f"campaign {self.campaign_id} on channel {self.channel_id} ({self.size} customers)"


class SandboxNotification(models.Model):
    """One notification the sandbox POSTed to a listener, playing Optimove."""

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="notifications")
    event_type_id = models.PositiveSmallIntegerField()
    url = models.URLField(max_length=2000)
    body = models.JSONField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True, default="")
    sent_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-sent_at", "-id"]

    def __str__(self) -> str:
        return f"type {self.event_type_id} → {self.display_url} ({self.outcome})"

    @property
    def display_url(self) -> str:
        """The URL with its listener token masked: the token is the client's secret."""
        return redact(self.url)

    @property
    def outcome(self) -> str:
        return str(self.status_code) if self.status_code is not None else f"error: {self.error}"

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
