from django.contrib import admin

from apps.subscriptions.models import Subscription, SubscriptionChange


class SubscriptionChangeInline(admin.TabularInline):
    model = SubscriptionChange
    extra = 0
    can_delete = False
    fields = ("created_at", "status", "source", "detail")
    readonly_fields = fields


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("customer_id", "client", "channel", "status", "source", "changed_at")
    list_filter = ("status", "source")
    search_fields = ("customer_id",)
    raw_id_fields = ("client", "channel")
    inlines = [SubscriptionChangeInline]
