"""Provider events in the admin: read-only, limited to the staff user's clients, with the events that
matched no message one filter away."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from apps.clients.admin_scoping import ClientScopedAdminMixin
from apps.core.admin import ReadOnlyAdminMixin
from apps.delivery.models import DeliveryEvent


class MatchedFilter(admin.SimpleListFilter):
    title = "message"
    # The plain lookup's name, so links written as `?message__isnull=True` land on this filter.
    parameter_name = "message__isnull"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("True", "Unmatched (no message found)"), ("False", "Matched to a message")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "True":
            return queryset.filter(message__isnull=True)
        if self.value() == "False":
            return queryset.filter(message__isnull=False)
        return queryset


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ReadOnlyAdminMixin, ClientScopedAdminMixin, admin.ModelAdmin):
    client_lookup = "client"
    list_display = (
        "received_at",
        "client",
        "channel",
        "event",
        "provider",
        "provider_message_id",
        "message_link",
        "occurred_at",
    )
    list_filter = (MatchedFilter, "event", "provider", "client")
    search_fields = ("=provider_message_id", "=message__customer_id")
    list_select_related = ("client", "channel__client", "message")
    date_hierarchy = "received_at"
    fields = (
        "client",
        "channel",
        "message_link",
        "event",
        "provider",
        "provider_message_id",
        "occurred_at",
        "received_at",
        "url",
        "dedupe_key",
        "raw_json",
    )
    readonly_fields = fields
    show_full_result_count = False  # the table grows fast; counting it all on every page is slow

    @admin.display(description="message", ordering="message")
    def message_link(self, obj: DeliveryEvent) -> SafeString | str:
        if obj.message_id is None:
            return "(none found)"
        try:
            url = reverse("admin:campaigns_message_change", args=[obj.message_id])
        except NoReverseMatch:  # no Message admin registered
            return str(obj.message_id)
        return format_html('<a href="{}">{}</a>', url, obj.message_id)

    @admin.display(description="raw event")
    def raw_json(self, obj: DeliveryEvent) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(obj.raw, indent=2, sort_keys=True, ensure_ascii=False))
