from django.contrib import admin

from apps.subscriptions.models import OptOut


@admin.register(OptOut)
class OptOutAdmin(admin.ModelAdmin):
    list_display = ("customer_id", "client", "channel", "source", "created_at")
    list_filter = ("source",)
    search_fields = ("customer_id",)
    raw_id_fields = ("client", "channel")
