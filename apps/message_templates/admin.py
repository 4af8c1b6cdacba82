"""Message templates in the admin, scoped to the staff user's clients, with a live preview, and the
Optimove outbox (read only).

Every save, delete and bulk action goes through the services, which record what Optimove must hear
in the outbox; the list shows each template's sync state from its latest outbox row. The preview
renders the template as the form holds it with the saved sample attributes.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from apps.clients.admin_scoping import ClientScopedAdminMixin, user_may_access
from apps.clients.models import ChannelKind
from apps.core.admin import ReadOnlyAdminMixin
from apps.message_templates.models import MessageTemplate, OptimoveOutbox, OutboxState
from apps.message_templates.rendering import EXTRA_NAMES, TemplateRenderError, template_render
from apps.message_templates.services import (
    UPSERT_FIELDS,
    template_delete,
    template_sync_again,
    template_upsert,
)
from apps.message_templates.sms import sms_segments
from apps.message_templates.sync import outbox_state_label, templates_with_sync_state
from apps.message_templates.validation import sample_attributes_errors

# What the preview fills in for the platform's extras unless the sample attributes name them.
PREVIEW_EXTRA: dict[str, Any] = {
    "customer_id": "SAMPLE-CUSTOMER",
    "campaign_id": 0,
    "promo_code": "SAMPLE-PROMO",
    "send_id": "sample-send",
    "unsubscribe_url": "https://example.invalid/t/u/sample-unsubscribe-link",
}


class SyncStateFilter(admin.SimpleListFilter):
    title = "Optimove sync"
    parameter_name = "sync"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("synced", "synced"), ("pending", "pending"), ("failed", "failed"), ("never", "never pushed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # The queryset carries the `sync_state` annotation (MessageTemplateAdmin.get_queryset).
        states = {"synced": OutboxState.DONE, "pending": OutboxState.PENDING, "failed": OutboxState.FAILED}
        if self.value() in states:
            return queryset.filter(sync_state=states[self.value() or ""])
        if self.value() == "never":
            return queryset.filter(sync_state__isnull=True)
        return queryset


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ClientScopedAdminMixin, admin.ModelAdmin):
    client_lookup = "client"
    list_display = (
        "template_id",
        "name",
        "client",
        "channel",
        "kind",
        "is_active",
        "optimove_sync",
        "sync_error",
    )
    list_display_links = ("template_id", "name")
    list_filter = ("client", "channel__kind", "is_active", SyncStateFilter, "channel")
    list_select_related = ("client", "channel")
    search_fields = ("name", "=template_id")
    actions = ("activate", "deactivate", "sync_again")
    fieldsets = (
        (None, {"fields": ("client", "channel", "template_id", "name", "is_active")}),
        (
            "Content",
            {
                "fields": ("subject", "html_body", "text_body", "payload", "deep_link"),
                "description": (
                    'Merge tags: {{ FirstName }}, {{ attributes["First Name"] }}, '
                    '{{ FirstName | default("there") }} (also replaces empty values), {{ customer_id }}, '
                    "{{ promo_code }}, {% if %} and {% for %}. Only the HTML body is HTML-escaped."
                ),
            },
        ),
        ("Preview", {"fields": ("sample_attributes", "preview")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[MessageTemplate]:
        return templates_with_sync_state(super().get_queryset(request))

    def get_readonly_fields(self, request: HttpRequest, obj: MessageTemplate | None = None) -> list[str]:
        if obj is None:
            return ["preview"]
        # The TemplateID is how Optimove knows the template: to change it, add a new one and delete
        # this one, so Optimove hears of both.
        return ["client", "channel", "template_id", "preview"]

    @admin.display(description="kind", ordering="channel__kind")
    def kind(self, obj: MessageTemplate) -> str:
        return obj.channel.get_kind_display()

    @admin.display(description="Optimove sync", ordering="sync_state")
    def optimove_sync(self, obj: MessageTemplate) -> str:
        return outbox_state_label(
            state=getattr(obj, "sync_state", None), attempts=getattr(obj, "sync_attempts", 0)
        )

    @admin.display(description="last sync error")
    def sync_error(self, obj: MessageTemplate) -> str:
        # A row that went through keeps no error worth showing.
        if getattr(obj, "sync_state", None) in (None, OutboxState.DONE):
            return ""
        return str(getattr(obj, "sync_error", "") or "")

    @admin.display(description="preview")
    def preview(self, obj: MessageTemplate) -> SafeString:
        return render_to_string("admin/message_templates/preview.html", _preview_context(obj))

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm[Any], change: bool) -> None:
        if not user_may_access(user=request.user, obj=obj, client_lookup=self.client_lookup):
            raise PermissionDenied("this template belongs to a client you do not administer")
        template, _ = template_upsert(
            channel=obj.channel,
            template_id=obj.template_id,
            name=obj.name,
            **{field: getattr(obj, field) for field in UPSERT_FIELDS},
        )
        # The admin goes on with `obj` (the redirect, the history entry): make it the saved row.
        obj.pk = template.pk
        obj.created_at = template.created_at
        obj.updated_at = template.updated_at

    def delete_model(self, request: HttpRequest, obj: MessageTemplate) -> None:
        template_delete(template=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[MessageTemplate]) -> None:
        # Django's "delete selected" action lands here: one template_delete each, so every deletion
        # reaches Optimove like a single one. In one transaction: the selection is deleted whole or
        # not at all, and its outbox rows commit together, so one push carries them (not one call per
        # template as each commit woke the pusher).
        with transaction.atomic():
            for template in queryset:
                template_delete(template=template)

    @admin.action(description="Activate the selected templates (Optimove lists them)", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[MessageTemplate]) -> None:
        self._set_active(request, queryset, active=True)

    @admin.action(
        description="Deactivate the selected templates (Optimove stops listing them)", permissions=["change"]
    )
    def deactivate(self, request: HttpRequest, queryset: QuerySet[MessageTemplate]) -> None:
        self._set_active(request, queryset, active=False)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[MessageTemplate], *, active: bool) -> None:
        changed: list[str] = []
        refused: list[str] = []
        for template in queryset.select_related("channel"):
            if template.is_active == active:
                continue
            label = f"{template.channel.optimove_channel_id}/{template.template_id}"
            try:
                template_upsert(
                    channel=template.channel,
                    template_id=template.template_id,
                    name=template.name,
                    is_active=active,
                )
            except ValidationError as exc:
                refused.append(f"{label} ({'; '.join(exc.messages)})")
                continue
            changed.append(label)
        verb = "Activated" if active else "Deactivated"
        self.message_user(
            request, f"{verb} {len(changed)} template(s){': ' + ', '.join(changed) if changed else ''}."
        )
        if refused:
            self.message_user(
                request,
                f"Not changed, fix them first: {'; '.join(refused)}",
                messages.ERROR,
            )

    @admin.action(description="Push the selected templates to Optimove again", permissions=["change"])
    def sync_again(self, request: HttpRequest, queryset: QuerySet[MessageTemplate]) -> None:
        count = 0
        for template in queryset:
            template_sync_again(template=template)
            count += 1
        self.message_user(request, f"{count} template(s) queued for Optimove.")


@admin.register(OptimoveOutbox)
class OptimoveOutboxAdmin(ReadOnlyAdminMixin, ClientScopedAdminMixin, admin.ModelAdmin):
    """What was and is to be pushed to Optimove's template and app lists; read only."""

    client_lookup = "client"
    list_display = (
        "id",
        "created_at",
        "client",
        "optimove_channel_id",
        "kind",
        "action",
        "key",
        "name",
        "state",
        "attempts",
        "last_error",
        "done_at",
    )
    list_filter = ("state", "kind", "action", "client")
    list_select_related = ("client",)
    search_fields = ("=key", "name", "=optimove_channel_id")


def _preview_context(obj: MessageTemplate) -> dict[str, Any]:
    if obj.channel_id is None:
        return {"note": "Choose a channel and save to see a preview."}
    sample = obj.sample_attributes if obj.sample_attributes is not None else {}
    problems = sample_attributes_errors(sample)
    if problems:
        return {"error": problems[0]}
    extra = {**PREVIEW_EXTRA, "channel_id": obj.channel.optimove_channel_id, "template_id": obj.template_id}
    extra.update({name: value for name, value in sample.items() if name in EXTRA_NAMES})
    attributes = {name: value for name, value in sample.items() if name not in EXTRA_NAMES}
    # An unsaved copy (no pk) skips the compiled cache, so the preview shows exactly what the form
    # holds, even an edit that did not validate yet.
    draft = copy.copy(obj)
    draft.pk = None
    try:
        message = template_render(template=draft, attributes=attributes, extra=extra)
    except TemplateRenderError as exc:
        return {"error": exc.reason}
    context: dict[str, Any] = {"message": message}
    if message.payload is not None:
        context["payload_json"] = json.dumps(message.payload, indent=2, ensure_ascii=False)
    if message.data:
        context["data_json"] = json.dumps(message.data, indent=2, ensure_ascii=False)
    if obj.channel.kind == ChannelKind.SMS:
        context["sms"] = sms_segments(message.text)
    return context
