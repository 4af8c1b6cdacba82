from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from apps.clients.admin_scoping import ClientScopedAdminMixin
from apps.optimove.models import Notification


@admin.register(Notification)
class NotificationAdmin(ClientScopedAdminMixin, admin.ModelAdmin):
    client_lookup = "client"
    list_display = ("created_at", "client", "event_type_id", "campaign_id", "channel", "acted", "outcome")
    list_filter = ("acted", "event_type_id", "client")
    search_fields = ("=campaign_id",)
    readonly_fields = (
        "client",
        "channel",
        "url_channel",
        "event_type_id",
        "campaign_id",
        "body",
        "acted",
        "outcome",
        "run",
        "created_at",
    )
    list_select_related = ("client", "channel")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False
