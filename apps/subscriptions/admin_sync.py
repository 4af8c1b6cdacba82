"""The consent sync in the admin: the customers Optimove rejected, every call made, and the consent
attributes created. Records to look at, never to edit; a rejected customer can be pushed again.
Imported by `apps.subscriptions.admin`."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.clients.admin_scoping import ClientScopedAdminMixin
from apps.core.admin import ReadOnlyAdminMixin
from apps.subscriptions.models_sync import ConsentAttribute, ConsentSyncCall, ConsentSyncRejection
from apps.subscriptions.sync import subscriptions_push_again


@admin.register(ConsentSyncRejection)
class ConsentSyncRejectionAdmin(ReadOnlyAdminMixin, ClientScopedAdminMixin, admin.ModelAdmin):
    list_display = ("received_at", "client", "channel", "customer_id", "reason", "current_error")
    list_filter = ("client", "channel")
    list_select_related = ("client", "channel", "subscription")
    search_fields = ("customer_id",)
    date_hierarchy = "received_at"
    show_full_result_count = False
    fields = ("received_at", "client", "channel", "customer_id", "reason", "subscription", "call")
    readonly_fields = fields
    actions = ["push_again"]

    @admin.display(description="still waiting")
    def current_error(self, rejection: ConsentSyncRejection) -> str:
        """The customer's sync_error now: empty once a later push was accepted."""
        subscription = rejection.subscription
        return subscription.sync_error if subscription is not None else ""

    def has_push_again_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("subscriptions.change_subscription")

    @admin.action(
        description="Push the selected customers' states again at the next sync", permissions=["push_again"]
    )
    def push_again(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        ids = [pk for pk in queryset.values_list("subscription_id", flat=True) if pk is not None]
        count = subscriptions_push_again(subscription_ids=ids)
        self.message_user(
            request,
            f"{count} customer state(s) will be pushed again at the next sync "
            "(the others were pushed since, or changed).",
            messages.SUCCESS,
        )


@admin.register(ConsentSyncCall)
class ConsentSyncCallAdmin(ReadOnlyAdminMixin, ClientScopedAdminMixin, admin.ModelAdmin):
    list_display = (
        "sent_at",
        "channel",
        "method",
        "communication_mode",
        "customers",
        "state",
        "error",
        "callback",
        "rejected",
    )
    list_filter = ("state", "method", "client")
    list_select_related = ("channel", "channel__client")
    date_hierarchy = "sent_at"
    show_full_result_count = False
    # `versions` (a customer id per row of the call) is left out: long, and of no use to read.
    fields = (
        "sent_at",
        "answered_at",
        "client",
        "channel",
        "method",
        "communication_mode",
        "customers",
        "state",
        "error",
        "callback_received_at",
        "callback_success",
        "callback_request_id",
        "callback_note",
        "rejected",
        "callback_body",
    )
    readonly_fields = fields

    @admin.display(description="callback")
    def callback(self, call: ConsentSyncCall) -> str:
        if call.method != "attribute":
            return "-"
        if call.callback_received_at is None:
            return "waiting"
        if call.callback_success is None:
            return "received (unexpected shape)"
        return "success" if call.callback_success else "errors"


@admin.register(ConsentAttribute)
class ConsentAttributeAdmin(ReadOnlyAdminMixin, ClientScopedAdminMixin, admin.ModelAdmin):
    list_display = ("client", "name", "created_at", "note")
    list_filter = ("client",)
    fields = ("client", "name", "created_at", "note")
    readonly_fields = fields
