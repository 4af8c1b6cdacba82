"""Consent in the admin. Every change (add, edit, the opt-in and opt-out actions, the CSV import) goes
through `subscriptions_set` with source admin or csv_import, so it has its history row and reaches
Optimove through the sync. Rows are never deleted here: their history proves an opt-out (erasing a
customer is `manage.py customer_erase`). Staff limited to some clients see and change only theirs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.http import urlencode

from apps.clients.admin_scoping import ClientScopedAdminMixin, scope_queryset
from apps.clients.models import Channel
from apps.subscriptions import admin_sync  # noqa: F401 - registers the sync's admins (rejections, calls)
from apps.subscriptions.csv_import import CsvImportInvalid, size_label, subscriptions_csv_import
from apps.subscriptions.forms import (
    SubscriptionAddForm,
    SubscriptionCsvImportForm,
    SubscriptionStatusForm,
)
from apps.subscriptions.models import ConsentSource, ConsentStatus, Subscription, SubscriptionChange
from apps.subscriptions.services import ConsentUpdate, subscriptions_set

# One statement per this many customers when an action covers a whole filtered list.
ACTION_CHUNK_SIZE = 10_000


def _admin_detail(request: HttpRequest) -> str:
    """The evidence recorded for an admin's change: who made it."""
    return request.user.get_username()


class SyncStateFilter(admin.SimpleListFilter):
    title = "sync to Optimove"
    parameter_name = "sync"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("pending", "Not yet synced"),
            ("error", "Last sync failed or rejected"),
            ("synced", "Accepted by Optimove"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "pending":
            return queryset.filter(sync_version__gt=F("synced_version"))
        if self.value() == "error":
            return queryset.exclude(sync_error="")
        if self.value() == "synced":
            return queryset.filter(sync_version__lte=F("synced_version"))
        return queryset


class SubscriptionChangeInline(admin.TabularInline):
    """The history: read-only, it is the evidence of each change."""

    model = SubscriptionChange
    extra = 0
    can_delete = False
    fields = ("created_at", "status", "source", "detail")
    readonly_fields = fields
    ordering = ("-created_at", "-id")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Subscription)
class SubscriptionAdmin(ClientScopedAdminMixin, admin.ModelAdmin):
    client_lookup = "client"
    list_display = ("customer_id", "channel", "client", "status", "source", "changed_at", "sync_state")
    list_filter = ("client", "channel", "status", "source", SyncStateFilter)
    list_select_related = ("client", "channel__client")
    search_fields = ("customer_id",)
    search_help_text = "An exact customer id."
    ordering = ("-id",)
    # Counting millions of rows on every page view is what makes big changelists slow.
    show_full_result_count = False
    actions = ("opt_out", "opt_in")
    change_list_template = "admin/subscriptions/subscription/change_list.html"

    # Forms: add = channel, customer, state; change = the state only; neither saves by itself.

    add_fields = ("channel", "customer_id", "status")
    change_fields = (
        "client",
        "channel",
        "customer_id",
        "status",
        "source",
        "changed_at",
        "sync_version",
        "synced_version",
        "sync_error",
    )

    def get_form(
        self, request: HttpRequest, obj: Subscription | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[Any]]:
        if obj is None:
            # The add form's own Meta decides its model fields (see SubscriptionAddForm.customer_id).
            kwargs.update(form=SubscriptionAddForm, fields=None)
        else:
            kwargs["form"] = SubscriptionStatusForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Subscription | None = None) -> tuple[str, ...]:
        return self.add_fields if obj is None else self.change_fields

    def get_readonly_fields(self, request: HttpRequest, obj: Subscription | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return tuple(field for field in self.change_fields if field != "status")

    def get_inlines(self, request: HttpRequest, obj: Subscription | None) -> list[type[Any]]:
        return [SubscriptionChangeInline] if obj is not None else []  # a new row has no history yet

    def save_model(self, request: HttpRequest, obj: Subscription, form: ModelForm[Any], change: bool) -> None:
        if not change:
            obj.customer_id = form.cleaned_data["customer_id"]
        obj.client_id = obj.channel.client_id
        if not self._may_access(request, obj):
            raise PermissionDenied("this subscription belongs to a client you do not administer")
        status = form.cleaned_data["status"]
        changed = subscriptions_set(
            channel=obj.channel,
            updates=[ConsentUpdate(customer_id=obj.customer_id, status=status)],
            source=ConsentSource.ADMIN,
            detail=_admin_detail(request),
        )
        # The page goes on with the stored row (its id for the log and the redirect).
        obj.pk = Subscription.objects.values_list("pk", flat=True).get(
            channel_id=obj.channel_id, customer_id=obj.customer_id
        )
        obj.refresh_from_db()
        if not changed:
            self.message_user(
                request,
                f"{obj.customer_id} was already {obj.get_status_display().lower()} on {obj.channel}; "
                "nothing changed.",
                messages.INFO,
            )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="synced")
    def sync_state(self, subscription: Subscription) -> str:
        if subscription.sync_error:
            return "error"
        return "yes" if subscription.synced_version >= subscription.sync_version else "pending"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        # Exact match only: within a client (a client admin's rows, or the client filter) it uses the
        # (client, customer) index, which an icontains search never could.
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(customer_id=term), False

    # Actions

    @admin.action(description="Opt out the selected customers", permissions=["change"])
    def opt_out(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        self._set_selected(request, queryset, ConsentStatus.OPTED_OUT)

    @admin.action(description="Opt in the selected customers", permissions=["change"])
    def opt_in(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        self._set_selected(request, queryset, ConsentStatus.OPTED_IN)

    def _set_selected(self, request: HttpRequest, queryset: QuerySet[Subscription], status: str) -> None:
        # `queryset` is the changelist's, already limited to the user's clients.
        by_channel: dict[int, list[str]] = defaultdict(list)
        for channel_id, customer_id in queryset.order_by().values_list("channel_id", "customer_id"):
            by_channel[channel_id].append(customer_id)
        channels = Channel.objects.in_bulk(list(by_channel))
        selected = sum(len(customers) for customers in by_channel.values())
        changed = 0
        with transaction.atomic():
            for channel_id, customers in by_channel.items():
                for start in range(0, len(customers), ACTION_CHUNK_SIZE):
                    updates = [
                        ConsentUpdate(customer_id=customer_id, status=status)
                        for customer_id in customers[start : start + ACTION_CHUNK_SIZE]
                    ]
                    changed += subscriptions_set(
                        channel=channels[channel_id],
                        updates=updates,
                        source=ConsentSource.ADMIN,
                        detail=_admin_detail(request),
                    )
        label = ConsentStatus(status).label.lower()
        self.message_user(
            request,
            f"{changed} of {selected} selected customers {label}; the others already were.",
            messages.SUCCESS,
        )

    # The CSV import

    def get_urls(self) -> list[URLPattern]:
        csv_import = path(
            "import-csv/",
            self.admin_site.admin_view(self.import_csv_view),
            name="subscriptions_subscription_import_csv",
        )
        return [csv_import, *super().get_urls()]

    def _may_import(self, request: HttpRequest) -> bool:
        return self.has_add_permission(request) and self.has_change_permission(request)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {"may_import_csv": self._may_import(request), **(extra_context or {})}
        return super().changelist_view(request, context)

    def import_csv_view(self, request: HttpRequest) -> HttpResponse:
        if not self._may_import(request):
            raise PermissionDenied
        channels = scope_queryset(
            Channel.objects.select_related("client").order_by("client__slug", "optimove_channel_id"),
            user=request.user,
            client_lookup="client",
        )
        form = SubscriptionCsvImportForm(request.POST or None, request.FILES or None, channels=channels)
        invalid: CsvImportInvalid | None = None
        if request.method == "POST" and form.is_valid():
            channel: Channel = form.cleaned_data["channel"]
            upload = form.cleaned_data["file"]
            try:
                result = subscriptions_csv_import(channel=channel, data=upload.read(), file_name=upload.name)
            except CsvImportInvalid as exc:
                invalid = exc
            else:
                self.message_user(
                    request,
                    f"Imported {upload.name} into {channel}: {result.changed} of {result.rows} rows changed "
                    "a customer's state; the others were already in that state.",
                    messages.SUCCESS,
                )
                changelist = reverse("admin:subscriptions_subscription_changelist")
                return HttpResponseRedirect(f"{changelist}?{urlencode({'channel__id__exact': channel.pk})}")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import consent from a CSV file",
            "form": form,
            "invalid": invalid,
            "statuses": SubscriptionCsvImportForm.accepted_statuses(),
            "max_size": size_label(settings.SUBSCRIPTIONS_CSV_MAX_BYTES),
        }
        return TemplateResponse(request, "admin/subscriptions/subscription/import_csv.html", context)
