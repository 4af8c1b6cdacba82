"""Message templates: per client and channel, identified towards Optimove by an integer TemplateID."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from apps.clients.models import Channel, Client
from apps.core.models import TimestampedModel


class MessageTemplate(TimestampedModel):
    """What a customer receives on a channel; the text parts are Jinja2 merge-tag templates.

    Which parts are required depends on the channel's kind (see `validation.template_content_errors`).
    Write through `apps.message_templates.services` only: they record every change Optimove must hear
    in the outbox, and rendering caches compiled templates by (pk, updated_at), which only `save()` moves.
    """

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="message_templates")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="message_templates")
    template_id = models.PositiveIntegerField(
        "Optimove TemplateID",
        validators=[MinValueValidator(1)],
        help_text="The whole number Optimove knows this template by; unique per channel.",
    )
    name = models.CharField(max_length=200, help_text="Optimove shows this name to marketers.")
    is_active = models.BooleanField("active", default=True)
    subject = models.CharField(
        "subject / push title", max_length=1000, blank=True, default="", help_text="Merge tags allowed."
    )
    html_body = models.TextField(
        "HTML body", blank=True, default="", help_text="Email HTML. Merge tags are HTML-escaped here."
    )
    text_body = models.TextField(
        "text",
        blank=True,
        default="",
        help_text="Email text part, SMS text, push body or console text. Merge tags allowed.",
    )
    payload = models.JSONField(
        null=True,
        blank=True,
        help_text=(
            "Webhook JSON body, or push data (an object of text values). Every text value may hold merge "
            "tags; numbers, booleans and structure are kept as they are."
        ),
    )
    deep_link = models.CharField(max_length=2000, blank=True, default="", help_text="Push deep link.")
    sample_attributes = models.JSONField(
        "sample attributes",
        default=dict,
        blank=True,
        help_text='For the preview only: a JSON object such as {"FirstName": "Ada", "Balance": "12.5"}.',
    )

    class Meta:
        ordering = ["client__slug", "channel__optimove_channel_id", "template_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "template_id"], name="message_template_unique_per_channel"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.template_id} {self.name}"

    def clean(self) -> None:
        from apps.message_templates.validation import template_content_errors

        errors: dict[str, list[str]] = {}
        if self.sample_attributes is None:  # the admin's emptied JSON input: no sample
            self.sample_attributes = {}
        both_set = self.client_id is not None and self.channel_id is not None
        if both_set and self.channel.client_id != self.client_id:
            errors["channel"] = [
                f"Channel “{self.channel.name}” belongs to another client; choose one of "
                f"client “{self.client.slug}”'s channels."
            ]
        if self.name and not self.name.strip():
            errors["name"] = ["A name is required: Optimove shows it to marketers."]
        if self.channel_id is not None:
            for field, messages in template_content_errors(template=self).items():
                errors.setdefault(field, []).extend(messages)
        if errors:
            raise ValidationError(errors)


class OutboxKind(models.TextChoices):
    TEMPLATE = "template", "template"
    APP = "app", "push app"


class OutboxAction(models.TextChoices):
    ADD = "add", "add"
    DELETE = "delete", "delete"


class OutboxState(models.TextChoices):
    PENDING = "pending", "pending"
    DONE = "done", "done"
    # A later change to the same key was pushed in its place; this one never needed its own call.
    SUPERSEDED = "superseded", "superseded"
    FAILED = "failed", "failed"


class OptimoveOutbox(models.Model):
    """One change to a channel's template list or app list in Optimove, waiting to be pushed or pushed.

    Written by the template and push-app services in the same transaction as the change itself, so a
    change is never saved without its row nor a row left for a change that was rolled back; pushed by
    `apps.message_templates.sync.outbox_push` (a task, never the request). Rows are kept by Optimove
    ChannelID rather than a foreign key to the channel: a deleted channel's deletions still have to
    reach Optimove after the channel row is gone.
    """

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="optimove_outbox")
    optimove_channel_id = models.PositiveIntegerField("Optimove ChannelID")
    kind = models.CharField(max_length=16, choices=OutboxKind.choices)
    action = models.CharField(max_length=16, choices=OutboxAction.choices)
    key = models.CharField(max_length=200, help_text="The TemplateID (digits) or the AppID.")
    name = models.CharField(max_length=500, blank=True, default="", help_text="The name an add sends.")
    state = models.CharField(max_length=16, choices=OutboxState.choices, default=OutboxState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True, default="")
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="After a failure that can heal: not pushed again before this."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "Optimove outbox row"
        ordering = ["-id"]
        indexes = [
            # The latest row for one key: the admin's sync state of a template or app.
            models.Index(
                fields=["client", "optimove_channel_id", "kind", "key", "-id"], name="outbox_latest_per_key"
            ),
            # What is left to push; small, as pushed rows leave it.
            models.Index(
                fields=["client", "optimove_channel_id", "kind", "id"],
                name="outbox_pending",
                condition=models.Q(state="pending"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(action="add") | ~models.Q(name=""), name="outbox_add_has_a_name"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.kind} {self.key} on channel {self.optimove_channel_id} ({self.state})"
