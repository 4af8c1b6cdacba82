"""Clients and channels in the admin. Secrets are write-only (see forms.py) and never listed; each
page says only whether a secret is set (provider secrets: their names).

Channels are saved and deleted through `services.channel_save` / `channel_delete`, and a push
channel's apps through `push_apps`, so that Optimove hears of every template and app they take along.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers, patch_cache_control

from apps.clients import services
from apps.clients.admin_scoping import ClientScopedAdminMixin, ClientScopedInlineMixin
from apps.clients.api_tokens import client_api_token_create, client_api_token_revoke
from apps.clients.forms import ChannelAdminForm, ClientAdminForm
from apps.clients.models import Channel, ChannelKind, Client, ClientApiToken, PushApp
from apps.clients.push_apps import push_app_delete, push_app_upsert
from apps.message_templates.sync import app_latest_outbox_row, outbox_state_label


def _is_superuser(request: HttpRequest) -> bool:
    return bool(getattr(request.user, "is_superuser", False))


def _set_or_not(value: object) -> str:
    return "set" if value else "not set"


class ChannelFormSet(BaseInlineFormSet):
    """Saves and deletes the client page's channel rows through the channel services."""

    def save_existing(self, form: ModelForm[Any], obj: Any, commit: bool = True) -> Any:
        services.channel_save(channel=obj)
        return obj

    def delete_existing(self, obj: Any, commit: bool = True) -> None:
        services.channel_delete(channel=obj)


class ChannelInline(ClientScopedInlineMixin, admin.TabularInline):
    """The client's channels at a glance; secrets are edited on the channel's own page."""

    model = Channel
    formset = ChannelFormSet
    fields = ("optimove_channel_id", "name", "kind", "provider", "is_realtime", "is_active")
    extra = 0
    show_change_link = True


@admin.register(Client)
class ClientAdmin(ClientScopedAdminMixin, admin.ModelAdmin):
    client_lookup = ""
    form = ClientAdminForm
    list_display = ("slug", "name", "optimove_base_url", "credentials", "channel_count", "is_active")
    list_filter = ("is_active",)
    search_fields = ("slug", "name")
    filter_horizontal = ("admins",)
    inlines = (ChannelInline,)
    actions = ("regenerate_listener_token",)
    fieldsets = (
        (None, {"fields": ("slug", "name", "is_active", "personal_data_retention_days")}),
        (
            "Optimove",
            {
                "fields": (
                    "optimove_base_url",
                    "api_key_status",
                    "new_optimove_api_key",
                    "clear_optimove_api_key",
                    "optimove_username",
                    "password_status",
                    "new_optimove_password",
                    "clear_optimove_password",
                    "listener_token_status",
                ),
                "description": "Give an API key, or a user name and password for the legacy login.",
            },
        ),
        ("Access", {"fields": ("admins",)}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Client]:
        return super().get_queryset(request).annotate(channel_total=Count("channels"))

    def get_readonly_fields(self, request: HttpRequest, obj: Client | None = None) -> list[str]:
        readonly = ["api_key_status", "password_status", "listener_token_status", "created_at", "updated_at"]
        if obj is not None:
            # The slug is in every listener URL registered with Optimove; changing it breaks them.
            readonly.append("slug")
        if not _is_superuser(request):
            readonly.append("admins")
        return readonly

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _is_superuser(request) and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_superuser(request) and super().has_delete_permission(request, obj)

    @admin.display(description="credentials")
    def credentials(self, client: Client) -> str:
        if client.optimove_api_key:
            return "API key"
        if client.optimove_username and client.optimove_password:
            return "user name and password"
        return "missing"

    @admin.display(description="channels", ordering="channel_total")
    def channel_count(self, client: Client) -> int:
        return int(getattr(client, "channel_total", 0))

    @admin.display(description="Optimove API key")
    def api_key_status(self, client: Client) -> str:
        return _set_or_not(client.optimove_api_key)

    @admin.display(description="Optimove password")
    def password_status(self, client: Client) -> str:
        return _set_or_not(client.optimove_password)

    @admin.display(description="listener token")
    def listener_token_status(self, client: Client) -> str:
        if not client.pk:
            return "made when the client is saved"
        return (
            f"{_set_or_not(client.listener_token)} (never shown; a superuser can regenerate it from the list)"
        )

    @admin.action(
        description="Regenerate listener token (re-register the listeners afterwards)",
        permissions=["regenerate_listener_token"],
    )
    def regenerate_listener_token(self, request: HttpRequest, queryset: QuerySet[Client]) -> None:
        slugs = []
        for client in queryset:
            services.client_listener_token_regenerate(client=client)
            slugs.append(client.slug)
        self.message_user(
            request,
            f"New listener token for {', '.join(slugs)}. Listener URLs registered with the old token now "
            "fail: register the event listeners with Optimove again.",
            messages.WARNING,
        )

    def has_regenerate_listener_token_permission(self, request: HttpRequest) -> bool:
        return _is_superuser(request)


class PushAppFormSet(BaseInlineFormSet):
    """Saves and deletes a push channel's apps through `push_apps`, so Optimove hears of each."""

    def save_new(self, form: ModelForm[Any], commit: bool = True) -> Any:
        app, _ = push_app_upsert(
            channel=self.instance,
            app_id=form.cleaned_data["app_id"],
            name=form.cleaned_data["name"],
            is_active=form.cleaned_data.get("is_active", False),
        )
        return app

    def save_existing(self, form: ModelForm[Any], obj: Any, commit: bool = True) -> Any:
        # The form has already put its values on `obj`; what Optimove lists is the stored row.
        stored = PushApp.objects.get(pk=obj.pk)
        if stored.app_id != obj.app_id:
            # The AppID is the app's key in Optimove: a new one is another app there.
            push_app_delete(app=stored)
        app, _ = push_app_upsert(
            channel=self.instance, app_id=obj.app_id, name=obj.name, is_active=obj.is_active
        )
        return app

    def delete_existing(self, obj: Any, commit: bool = True) -> None:
        push_app_delete(app=obj)


class PushAppInline(admin.TabularInline):
    """Only on a push channel's page (see ChannelAdmin.get_inlines); the page's client scoping covers it."""

    model = PushApp
    formset = PushAppFormSet
    fields = ("app_id", "name", "is_active", "optimove_sync")
    readonly_fields = ("optimove_sync",)
    extra = 0

    @admin.display(description="Optimove sync")
    def optimove_sync(self, app: PushApp) -> str:
        if app.pk is None:
            return ""
        row = app_latest_outbox_row(app=app)
        if row is None:
            return outbox_state_label(state=None)
        label = outbox_state_label(state=row.state, attempts=row.attempts)
        return f"{label}: {row.last_error}" if row.last_error and row.state != "done" else label


@admin.register(Channel)
class ChannelAdmin(ClientScopedAdminMixin, admin.ModelAdmin):
    client_lookup = "client"
    form = ChannelAdminForm
    list_display = ("optimove_channel_id", "name", "client", "kind", "provider", "is_realtime", "is_active")
    list_display_links = ("optimove_channel_id", "name")
    list_filter = ("kind", "is_realtime", "is_active", "client")
    search_fields = ("name", "client__slug", "provider")
    list_select_related = ("client",)
    readonly_fields = ("provider_secrets_keys", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("client", "optimove_channel_id", "name", "kind", "is_active")}),
        (
            "Provider",
            {
                "fields": (
                    "provider",
                    "provider_options",
                    "provider_secrets_keys",
                    "provider_secrets_update",
                    "clear_provider_secrets",
                    "address_attribute",
                    "rate_limit_per_second",
                )
            },
        ),
        ("Optimove events", {"fields": ("is_realtime", "scheduled_event_type")}),
        ("Consent", {"fields": ("consent_sync", "consent_attribute")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    def get_inlines(
        self, request: HttpRequest, obj: Channel | None
    ) -> list[type[admin.options.InlineModelAdmin[Any, Any]]]:
        # Apps belong to push channels; a new channel gets its apps once it is saved as one.
        if obj is not None and obj.pk is not None and obj.kind == ChannelKind.PUSH:
            return [PushAppInline]
        return []

    def save_model(self, request: HttpRequest, obj: Channel, form: ModelForm[Any], change: bool) -> None:
        if not self._may_access(request, obj):
            raise PermissionDenied("this channel belongs to a client you do not administer")
        services.channel_save(channel=obj)

    def delete_model(self, request: HttpRequest, obj: Channel) -> None:
        services.channel_delete(channel=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset:
            services.channel_delete(channel=channel)

    @admin.display(description="stored provider secrets")
    def provider_secrets_keys(self, channel: Channel) -> str:
        # Names only: which secrets exist, never what they are.
        keys = sorted(channel.provider_secrets or {})
        return ", ".join(keys) if keys else "none"


@admin.register(ClientApiToken)
class ClientApiTokenAdmin(ClientScopedAdminMixin, admin.ModelAdmin):
    """Tokens for the client API. A new token's plaintext is shown once, on the page that answers its
    creation (never cached, never stored, never in a message or a log); afterwards only its prefix."""

    client_lookup = "client"
    list_display = ("prefix", "name", "client", "created_at", "last_used_at", "state")
    list_filter = ("client",)
    search_fields = ("=prefix", "name")
    list_select_related = ("client",)
    actions = ("revoke",)

    def get_fields(self, request: HttpRequest, obj: ClientApiToken | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("client", "name")
        return ("client", "name", "prefix", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request: HttpRequest, obj: ClientApiToken | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        # A token's client is what it grants access to: moving it would hand one client's key to another.
        return ("client", "prefix", "created_at", "last_used_at", "revoked_at")

    @admin.display(description="state")
    def state(self, token: ClientApiToken) -> str:
        return f"revoked {token.revoked_at:%Y-%m-%d %H:%M} UTC" if token.revoked_at else "live"

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A valid POST creates the token through the service and answers with the one page that
        shows its plaintext; everything else (the empty form, errors) is the admin's own add page."""
        if request.method == "POST":
            if not self.has_add_permission(request):
                raise PermissionDenied
            form = self.get_form(request, None, change=False)(request.POST)
            if form.is_valid():
                issued = client_api_token_create(
                    client=form.cleaned_data["client"], name=form.cleaned_data["name"]
                )
                self.log_addition(request, issued.token, [{"added": {}}])
                context = {
                    **self.admin_site.each_context(request),
                    "opts": self.opts,
                    "original": issued.token,
                    "plaintext": issued.plaintext,
                    "title": f"API token for {issued.token.client.slug} created",
                }
                response = TemplateResponse(request, "admin/clients/clientapitoken/issued.html", context)
                add_never_cache_headers(response)
                patch_cache_control(response, no_store=True, private=True)
                return response
        return super().add_view(request, form_url, extra_context)

    def save_model(
        self, request: HttpRequest, obj: ClientApiToken, form: ModelForm[Any], change: bool
    ) -> None:
        if not change:  # add_view creates tokens through the service; this is a safety net
            raise PermissionDenied("create tokens through the add page")
        super().save_model(request, obj, form, change)  # the name only: the rest is read-only

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ClientApiToken]) -> None:
        revoked = [token.prefix for token in queryset if client_api_token_revoke(token=token)]
        if revoked:
            self.message_user(
                request,
                f"Revoked {', '.join(revoked)}: requests with these tokens are refused from now on.",
                messages.SUCCESS,
            )
        else:
            self.message_user(request, "The selected tokens were already revoked.", messages.INFO)
