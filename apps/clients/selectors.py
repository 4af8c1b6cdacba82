"""Reads of clients and channels, including which clients a staff user may see."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from apps.clients.fields import EncryptedJSONField, EncryptedTextField
from apps.clients.models import Channel, Client


def user_sees_all_clients(*, user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(getattr(user, "is_active", False) and getattr(user, "is_superuser", False))


def client_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Client]:
    """Every client for a superuser; otherwise only those the user is one of the `admins` of."""
    if user_sees_all_clients(user=user):
        return Client.objects.all()
    user_id = getattr(user, "pk", None)
    if user_id is None or not getattr(user, "is_active", False):
        return Client.objects.none()
    return Client.objects.filter(admins__pk=user_id)


def client_id_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Client, int]:
    """The ids of `client_list_for_user`, as a subquery (`filter(client__in=...)` stays one query)."""
    return client_list_for_user(user=user).values_list("pk", flat=True)


def client_get(*, slug: str) -> Client:
    """Raises Client.DoesNotExist for an unknown slug."""
    return Client.objects.get(slug=slug)


def channel_list(*, client: Client) -> QuerySet[Channel]:
    return Channel.objects.filter(client=client).order_by("optimove_channel_id")


def _plain_columns(model: type[Client] | type[Channel], *, keep: tuple[str, ...] = ()) -> str:
    """Every column but the encrypted ones (decrypting them costs more than the rest of the row)."""
    columns = [
        field.column
        for field in model._meta.concrete_fields
        if not isinstance(field, EncryptedTextField | EncryptedJSONField) or field.name in keep
    ]
    return ", ".join(f'"{column}"' for column in columns)


# The listener answers hundreds of calls a second: these two reads skip the ORM's query compiler (about
# 1 ms each here) and the secrets the listener does not use, which still load if something reads them.
# Column and table names come from the models, never from input.
_LISTENER_CLIENT_SQL = (
    f"SELECT {_plain_columns(Client, keep=('listener_token',))} FROM {Client._meta.db_table} "  # noqa: S608
    "WHERE slug = %s AND is_active"
)
_LISTENER_CHANNEL_SQL = (
    f"SELECT {_plain_columns(Channel)} FROM {Channel._meta.db_table} "  # noqa: S608
    "WHERE client_id = %s AND optimove_channel_id = %s"
)


def listener_client_get(*, slug: str) -> Client | None:
    """The active client a listener call names, or None."""
    return next(iter(Client.objects.raw(_LISTENER_CLIENT_SQL, [slug])), None)


def listener_channel_get(*, client: Client, optimove_channel_id: int) -> Channel | None:
    """The client's channel with this Optimove ChannelID, active or not, or None."""
    return next(iter(Channel.objects.raw(_LISTENER_CHANNEL_SQL, [client.pk, optimove_channel_id])), None)
