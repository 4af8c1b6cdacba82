from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from apps.clients.fields import EncryptedJSONField, EncryptedTextField
from apps.core.models import TimestampedModel


def new_listener_token() -> str:
    return secrets.token_urlsafe(32)


class Client(TimestampedModel):
    """An Optimove client (tenant) with its own credentials, channels and templates."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    optimove_base_url = models.URLField(
        "Optimove base URL",
        max_length=300,
        help_text="As Optimove gave it, e.g. https://api5.optimove.net (keep any path prefix).",
    )
    optimove_api_key = EncryptedTextField("Optimove API key", blank=True, default="")
    optimove_username = models.CharField(
        "Optimove user name (legacy login)", max_length=200, blank=True, default=""
    )
    optimove_password = EncryptedTextField("Optimove password (legacy login)", blank=True, default="")
    listener_token = EncryptedTextField(default=new_listener_token)
    personal_data_retention_days = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1)],
        help_text="Customer attributes and rendered content on messages are purged this many days after "
        "the send; ids, states and counts stay for reporting.",
    )
    is_active = models.BooleanField(default=True)
    admins = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="managed_clients",
        help_text="Staff users limited to this client. Only superusers see every client.",
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def uses_api_key(self) -> bool:
        return bool(self.optimove_api_key)


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Push"
    WEBHOOK = "webhook", "Webhook"
    CONSOLE = "console", "Console (logs only)"


class ScheduledEventType(models.IntegerChoices):
    CAMPAIGN_EXECUTED_ON_CHANNEL = 13, "13: campaign executed on channel"
    CAMPAIGN_PROCESSED = 1, "1: campaign processed (older set-ups)"


class ConsentSync(models.TextChoices):
    PREFERENCE = "preference", "SetCustomerChannelPreference"
    ATTRIBUTE = "attribute", "A customer attribute (UpdateCustomerAttributes)"
    OFF = "off", "Not synced (shared through Optimove's batch process)"


class Channel(TimestampedModel):
    """One of a client's execution channels, as Optimove knows it (by ChannelID)."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="channels")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    optimove_channel_id = models.PositiveIntegerField("Optimove ChannelID")
    provider = models.CharField(
        max_length=64,
        help_text="Provider backend name, e.g. smtp, anymail:sendgrid, twilio, fcm, webhook, console.",
    )
    provider_options = models.JSONField(
        blank=True, default=dict, help_text="Non-secret provider settings: host, sender, base URL..."
    )
    provider_secrets = EncryptedJSONField(
        blank=True, default=dict, help_text="Passwords, tokens and keys; encrypted, never shown back."
    )
    address_attribute = models.CharField(
        max_length=100,
        blank=True,
        default="",
        validators=[RegexValidator(r"^[A-Za-z0-9_.\-]*$", "Letters, digits, _ . and - only.")],
        help_text="The customer attribute holding the address (email, phone, device token, URL).",
    )
    rate_limit_per_second = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Empty means unlimited."
    )
    max_lateness_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Messages later than this after their send time are skipped, e.g. after downtime. "
        "Empty means the platform default.",
    )
    is_realtime = models.BooleanField("real-time", default=False)
    consent_sync = models.CharField(
        "consent sync to Optimove",
        max_length=16,
        choices=ConsentSync.choices,
        default=ConsentSync.PREFERENCE,
        help_text="How Optimove learns each customer's opt-in state on this channel.",
    )
    consent_attribute = models.CharField(
        max_length=100,
        blank=True,
        default="",
        validators=[RegexValidator(r"^[A-Za-z0-9_]*$", "Letters, digits and _ only.")],
        help_text="The customer attribute holding the opt-in state, when consent sync is by attribute.",
    )
    scheduled_event_type = models.PositiveSmallIntegerField(
        choices=ScheduledEventType.choices, default=ScheduledEventType.CAMPAIGN_EXECUTED_ON_CHANNEL
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["client__slug", "optimove_channel_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "optimove_channel_id"], name="channel_unique_per_client"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client.slug}/{self.optimove_channel_id} {self.name}"

    def clean(self) -> None:
        if self.consent_sync == ConsentSync.ATTRIBUTE and not self.consent_attribute:
            raise ValidationError(
                {"consent_attribute": "Name the customer attribute that consent sync by attribute fills."}
            )


class PushApp(TimestampedModel):
    """An app of a push channel, listed to marketers in Optimove's campaign builder (AddChannelApps).

    Write through `apps.clients.push_apps` only: it records each add, rename and delete in the Optimove
    outbox in the same transaction.
    """

    channel = models.ForeignKey(
        Channel,
        on_delete=models.CASCADE,
        related_name="push_apps",
        limit_choices_to={"kind": ChannelKind.PUSH},
    )
    app_id = models.CharField(
        "Optimove AppID", max_length=200, help_text="How Optimove knows the app; unique per channel."
    )
    name = models.CharField(max_length=200, help_text="Optimove shows this name to marketers.")
    is_active = models.BooleanField("active", default=True)

    class Meta:
        verbose_name = "push app"
        ordering = ["channel__client__slug", "channel__optimove_channel_id", "app_id"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "app_id"], name="push_app_unique_per_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.app_id} {self.name}"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.channel_id is not None and self.channel.kind != ChannelKind.PUSH:
            errors["channel"] = [
                f"Channel “{self.channel.name}” is a {self.channel.get_kind_display()} channel; only push "
                "channels have apps."
            ]
        if self.app_id and (self.app_id != self.app_id.strip() or not self.app_id.isprintable()):
            errors["app_id"] = ["The AppID must not start or end with spaces or hold control characters."]
        if self.name and not self.name.strip():
            errors["name"] = ["A name is required: Optimove shows it to marketers."]
        if errors:
            raise ValidationError(errors)


class ClientApiToken(TimestampedModel):
    """A bearer token a client's own systems use on the client API (consent reads and writes).

    Only the SHA-256 of the token is stored, so a database dump yields nothing usable; the short
    `prefix` (the token's first characters) names it in the admin and in consent history. Create and
    revoke through `apps.clients.api_tokens`: the plaintext exists only in the answer to its creation.
    """

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=200, help_text="Who or what uses it, e.g. “CRM nightly job”.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    token_hash = models.CharField("SHA-256 of the token", max_length=64, unique=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "client API token"
        ordering = ["client__slug", "-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… {self.name}"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
