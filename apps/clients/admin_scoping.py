"""Limiting what a staff user sees in the admin to the clients they administer.

A superuser sees every client. Any other staff user sees only the clients whose `admins` include them,
and only the rows that belong to those clients. Django's model permissions still apply on top: a
staff user needs `view_channel` to see channels at all, and then sees only their clients' channels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.forms import Field as FormField
from django.forms import ModelChoiceField, ModelForm
from django.http import HttpRequest

from apps.clients.models import Client
from apps.clients.selectors import client_id_list_for_user, user_sees_all_clients

if TYPE_CHECKING:
    _ModelAdminBase = admin.ModelAdmin[Any]
    _InlineBase = admin.options.InlineModelAdmin[Any, Any]
else:
    _ModelAdminBase = object
    _InlineBase = object


def scope_queryset(
    queryset: QuerySet[Any], *, user: AbstractBaseUser | AnonymousUser, client_lookup: str
) -> QuerySet[Any]:
    """`queryset` limited to rows under the clients `user` may see (`client_lookup` as below)."""
    if user_sees_all_clients(user=user):
        return queryset
    field = f"{client_lookup}__in" if client_lookup else "pk__in"
    return queryset.filter(**{field: client_id_list_for_user(user=user)})


def client_id_of(obj: models.Model, client_lookup: str) -> Any:
    """The id of the client `obj` belongs to, following `client_lookup`; None when it has none yet."""
    if not client_lookup:
        return obj.pk
    *path, last = client_lookup.split("__")
    target: Any = obj
    for part in path:
        target = getattr(target, part, None)
        if target is None:
            return None
    # The `<fk>_id` attribute: no query for the last hop.
    return getattr(target, target._meta.get_field(last).attname)


def user_may_access(*, user: AbstractBaseUser | AnonymousUser, obj: models.Model, client_lookup: str) -> bool:
    if user_sees_all_clients(user=user):
        return True
    client_id = client_id_of(obj, client_lookup)
    return client_id is not None and client_id_list_for_user(user=user).filter(pk=client_id).exists()


class _ScopedChoicesMixin(_ModelAdminBase):
    related_client_lookups: ClassVar[Mapping[str, str]] = {}

    def _related_client_lookup(self, db_field: models.Field[Any, Any]) -> str | None:
        """How the model a relation points at reaches Client: explicit, Client itself, or its one FK."""
        if db_field.name in self.related_client_lookups:
            return self.related_client_lookups[db_field.name]
        related = db_field.related_model
        if related is Client:
            return ""
        if not isinstance(related, type) or not issubclass(related, models.Model):
            return None
        to_client = [
            f.name
            for f in related._meta.get_fields()
            if f.many_to_one and f.concrete and f.related_model is Client
        ]
        return to_client[0] if len(to_client) == 1 else None

    def _scope_choices(
        self, formfield: FormField | None, db_field: models.Field[Any, Any], request: HttpRequest
    ) -> None:
        lookup = self._related_client_lookup(db_field)
        if lookup is None or not isinstance(formfield, ModelChoiceField) or formfield.queryset is None:
            return
        # The field's queryset is also what validates a POST, so a forged id is rejected too.
        formfield.queryset = scope_queryset(formfield.queryset, user=request.user, client_lookup=lookup)

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:  # type: ignore[type-arg,unused-ignore]
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        self._scope_choices(formfield, db_field, request)
        return formfield

    def formfield_for_manytomany(
        self, db_field: models.ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> Any:
        formfield = super().formfield_for_manytomany(db_field, request, **kwargs)
        self._scope_choices(formfield, db_field, request)
        return formfield


class ClientScopedAdminMixin(_ScopedChoicesMixin):
    """Limits a ModelAdmin to the clients the signed-in staff user administers.

    Put it before `admin.ModelAdmin` and name the path from the model to its `Client`:

        @admin.register(Channel)
        class ChannelAdmin(ClientScopedAdminMixin, admin.ModelAdmin):
            client_lookup = "client"          # Channel.client

        class MessageAdmin(ClientScopedAdminMixin, admin.ModelAdmin):
            client_lookup = "run__client"     # Message.run.client (foreign keys only)

        class ClientAdmin(ClientScopedAdminMixin, admin.ModelAdmin):
            client_lookup = ""                # the model is Client itself

    For users who are not superusers it then:
    - filters `get_queryset` (changelist, change, delete and history pages, actions, autocomplete);
      an out-of-scope object's pages answer like a missing object (a redirect to the admin index);
    - checks the object in `has_view/change/delete_permission(request, obj)` and again in `save_model`
      (PermissionDenied), so no page or forged POST reaches another client's row;
    - limits the choices of foreign keys and many-to-many fields (which also rejects forged ids on
      POST): a relation to `Client` itself, to a model with exactly one foreign key to `Client`
      (Channel, CampaignRun...), or any other listed in `related_client_lookups`
      (`{"template": "channel__client"}`: form field name -> path from the related model to Client);
    - turns plain relation entries of `list_filter` ("client", "channel") into
      `RelatedOnlyFieldListFilter`, so the filter sidebar lists only the user's own clients' rows.
    Model permissions (`view_`, `change_`...) still apply as usual; this only ever narrows them.
    """

    client_lookup: ClassVar[str] = "client"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return scope_queryset(
            super().get_queryset(request), user=request.user, client_lookup=self.client_lookup
        )

    def _may_access(self, request: HttpRequest, obj: models.Model | None) -> bool:
        if obj is None:
            return True
        return user_may_access(user=request.user, obj=obj, client_lookup=self.client_lookup)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) and self._may_access(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and self._may_access(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and self._may_access(request, obj)

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm[Any], change: bool) -> None:
        if not self._may_access(request, obj):
            raise PermissionDenied("this object belongs to a client you do not administer")
        super().save_model(request, obj, form, change)

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        declared = list(super().get_list_filter(request))
        if user_sees_all_clients(user=request.user):
            return declared
        scoped: list[Any] = []
        for entry in declared:
            if isinstance(entry, str) and self._is_relation_path(entry):
                scoped.append((entry, admin.RelatedOnlyFieldListFilter))
            else:
                scoped.append(entry)
        return scoped

    def _is_relation_path(self, path: str) -> bool:
        try:
            fields = get_fields_from_path(self.model, path)
        except FieldDoesNotExist:
            return False
        return bool(fields) and bool(getattr(fields[-1], "is_relation", False))


class ClientScopedInlineMixin(_ScopedChoicesMixin):
    """For inlines on a client-scoped page: filters the inline's rows and its relation choices the
    same way (`client_lookup` as in ClientScopedAdminMixin). Object permissions are the parent's."""

    client_lookup: ClassVar[str] = "client"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return scope_queryset(
            super().get_queryset(request), user=request.user, client_lookup=self.client_lookup
        )
