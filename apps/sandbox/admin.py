"""Admin pages for the sandbox: what it received, its campaigns, and a button to play Optimove.

Listener and callback URLs carry the platform's listener token (a client secret), so they are shown
masked and never in an editable field. Registered only when the sandbox is on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from apps.sandbox.models import (
    SandboxAccount,
    SandboxApp,
    SandboxAttribute,
    SandboxAttributeUpdate,
    SandboxCall,
    SandboxCampaign,
    SandboxInteraction,
    SandboxListener,
    SandboxMetric,
    SandboxNotification,
    SandboxPreference,
    SandboxTemplate,
)
from apps.sandbox.services import (
    DEFAULT_CLEARANCE_SECONDS,
    SandboxFireError,
    SandboxInputError,
    sandbox_campaign_validate,
    sandbox_fire,
)

FIRE_CHOICES = (
    (13, "13: campaign executed on channel"),
    (1, "1: campaign processed"),
    (4, "4: campaign cancelled"),
    (5, "5: conditional promotion, on hold until clearance"),
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the sandbox received: to look at and delete, not to edit."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SandboxAccountAdmin(admin.ModelAdmin):
    list_display = ("name", "username", "enforce_rate_limit", "fault_rate", "fault_statuses", "created_at")
    fields = ("name", "api_key", "username", "password", "enforce_rate_limit", "fault_rate", "fault_statuses")
    search_fields = ("name",)


class SandboxListenerAdmin(ReadOnlyAdmin):
    list_display = ("account", "event_type_id", "channel_id", "display_url", "updated_at")
    list_filter = ("account", "event_type_id")
    fields = ("account", "event_type_id", "channel_id", "display_url", "created_at", "updated_at")
    readonly_fields = fields


class SandboxTemplateAdmin(ReadOnlyAdmin):
    list_display = ("account", "channel_id", "template_id", "template_name", "updated_at")
    list_filter = ("account", "channel_id")


class SandboxAppAdmin(ReadOnlyAdmin):
    list_display = ("account", "channel_id", "app_id", "app_name", "updated_at")
    list_filter = ("account", "channel_id")


class SandboxMetricAdmin(ReadOnlyAdmin):
    list_display = (
        "account",
        "channel_id",
        "campaign_id",
        "template_id",
        "metric_id",
        "metric_value",
        "updated_at",
    )
    list_filter = ("account", "campaign_id", "metric_id")


class SandboxInteractionAdmin(ReadOnlyAdmin):
    list_display = (
        "received_at",
        "account",
        "channel_id",
        "campaign_id",
        "template_id",
        "event_id",
        "interaction_date",
        "customer_count",
    )
    list_filter = ("account", "campaign_id", "event_id")

    @admin.display(description="customers")
    def customer_count(self, obj: SandboxInteraction) -> int:
        return len(obj.customer_ids)


class SandboxPreferenceAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "account", "channel_id", "communication_mode", "app_id", "customer_count")
    list_filter = ("account", "channel_id", "communication_mode")

    @admin.display(description="customers")
    def customer_count(self, obj: SandboxPreference) -> int:
        return len(obj.customer_ids)


class SandboxAttributeAdmin(ReadOnlyAdmin):
    list_display = ("account", "name", "type", "default_value", "created_at")
    list_filter = ("account",)
    fields = ("account", "name", "type", "default_value", "created_at")
    readonly_fields = fields


class SandboxAttributeUpdateAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "account",
        "request_id",
        "is_success",
        "callback_status",
        "callback_http_status",
    )
    list_filter = ("account", "callback_status", "is_success")
    fields = (
        "account",
        "request_id",
        "customers",
        "is_success",
        "errors",
        "display_callback_url",
        "callback_status",
        "callback_http_status",
        "callback_error",
        "created_at",
    )
    readonly_fields = fields


class SandboxCallAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "account", "method", "function", "status")
    list_filter = ("account", "function", "status")


class SandboxNotificationAdmin(ReadOnlyAdmin):
    list_display = (
        "sent_at",
        "account",
        "event_type_id",
        "display_url",
        "status_code",
        "duration_ms",
        "error",
    )
    list_filter = ("account", "event_type_id", "status_code")
    fields = (
        "account",
        "event_type_id",
        "display_url",
        "body",
        "status_code",
        "duration_ms",
        "error",
        "sent_at",
    )
    readonly_fields = fields


class FireForm(forms.Form):
    event_type_id = forms.TypedChoiceField(label="Event type", choices=FIRE_CHOICES, coerce=int, initial=13)
    clearance_in_seconds = forms.IntegerField(
        label="Clearance in (seconds, type 5)", min_value=0, initial=DEFAULT_CLEARANCE_SECONDS
    )


def _fire_action(event_type_id: int, description: str) -> Callable[..., None]:
    @admin.action(description=description, permissions=["change"])
    def action(
        modeladmin: SandboxCampaignAdmin, request: HttpRequest, queryset: QuerySet[SandboxCampaign]
    ) -> None:
        for campaign in queryset.select_related("account"):
            modeladmin.fire(request, campaign, event_type_id=event_type_id)

    action.__name__ = f"fire_{event_type_id}"
    return action


class SandboxCampaignForm(forms.ModelForm):
    class Meta:
        model = SandboxCampaign
        fields = (
            "account",
            "campaign_id",
            "channel_id",
            "size",
            "seed",
            "template_ids",
            "send_offsets_seconds",
            "attributes",
            "base_time",
            "cancelled_count",
            "target_group_id",
            "campaign_type",
            "duration",
            "lead_time",
            "notes",
            "is_multi_channel",
            "is_recurrence",
            "status",
            "error",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            sandbox_campaign_validate(
                template_ids=data.get("template_ids"),
                send_offsets_seconds=data.get("send_offsets_seconds"),
                attributes=data.get("attributes"),
            )
        except SandboxInputError as exc:
            raise forms.ValidationError(str(exc)) from None
        if (data.get("cancelled_count") or 0) > (data.get("size") or 0):
            raise forms.ValidationError("The cancelled count cannot exceed the size.")
        return data


class SandboxCampaignAdmin(admin.ModelAdmin):
    form = SandboxCampaignForm
    list_display = (
        "campaign_id",
        "channel_id",
        "account",
        "size",
        "seed",
        "template_ids",
        "base_time",
        "cancelled_count",
    )
    list_filter = ("account", "channel_id")
    search_fields = ("=campaign_id",)
    change_form_template = "admin/sandbox/sandboxcampaign/change_form.html"
    actions = [
        _fire_action(13, "Fire notification 13 (campaign executed on channel)"),
        _fire_action(1, "Fire notification 1 (campaign processed)"),
        _fire_action(4, "Fire notification 4 (campaign cancelled)"),
        _fire_action(5, "Fire notification 5 (on hold until clearance)"),
    ]

    def get_urls(self) -> list[URLPattern]:
        fire = path(
            "<path:object_id>/fire/",
            self.admin_site.admin_view(self.fire_view),
            name="sandbox_sandboxcampaign_fire",
        )
        return [fire, *super().get_urls()]

    def fire(
        self,
        request: HttpRequest,
        campaign: SandboxCampaign,
        *,
        event_type_id: int,
        clearance_in_seconds: int | None = None,
    ) -> None:
        """Calls the firing service and reports each delivery as an admin message."""
        try:
            notifications = sandbox_fire(
                account=campaign.account,
                event_type_id=event_type_id,
                campaign_id=campaign.campaign_id,
                channel_id=campaign.channel_id,
                clearance_in_seconds=clearance_in_seconds,
            )
        except SandboxFireError as exc:
            self.message_user(request, f"Campaign {campaign.campaign_id}: {exc}", messages.ERROR)
            return
        for notification in notifications:
            self.message_user(
                request,
                f"Campaign {campaign.campaign_id}: fired event {event_type_id} "
                f"to {notification.display_url}: "
                f"{notification.outcome} in {notification.duration_ms} ms",
                messages.SUCCESS if notification.ok else messages.WARNING,
            )

    def fire_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        campaign = get_object_or_404(SandboxCampaign.objects.select_related("account"), pk=object_id)
        if not self.has_change_permission(request, campaign):
            raise PermissionDenied
        form = FireForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            self.fire(
                request,
                campaign,
                event_type_id=form.cleaned_data["event_type_id"],
                clearance_in_seconds=form.cleaned_data["clearance_in_seconds"],
            )
            return HttpResponseRedirect(reverse("admin:sandbox_sandboxcampaign_change", args=[campaign.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": campaign,
            "form": form,
            "title": f"Fire a notification for {campaign}",
        }
        return TemplateResponse(request, "admin/sandbox/sandboxcampaign/fire.html", context)


_REGISTRATIONS: Sequence[tuple[type[Any], type[admin.ModelAdmin]]] = (
    (SandboxAccount, SandboxAccountAdmin),
    (SandboxListener, SandboxListenerAdmin),
    (SandboxTemplate, SandboxTemplateAdmin),
    (SandboxApp, SandboxAppAdmin),
    (SandboxMetric, SandboxMetricAdmin),
    (SandboxInteraction, SandboxInteractionAdmin),
    (SandboxPreference, SandboxPreferenceAdmin),
    (SandboxAttribute, SandboxAttributeAdmin),
    (SandboxAttributeUpdate, SandboxAttributeUpdateAdmin),
    (SandboxCall, SandboxCallAdmin),
    (SandboxCampaign, SandboxCampaignAdmin),
    (SandboxNotification, SandboxNotificationAdmin),
)

if settings.SANDBOX_ENABLED:
    for model, model_admin in _REGISTRATIONS:
        admin.site.register(model, model_admin)
