"""Reads of clients and channels, including which clients a staff user may see."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.db.models import QuerySet

from apps.clients.fields import EncryptedJSONField, EncryptedTextField
from apps.clients.models import Channel, Client
from apps.core.rows import instance_from_row, model_fields, select_list


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


# The listener answers hundreds of calls a second: its one read is plain SQL (apps.core.rows) and skips
# the secrets the listener does not use, which still load if something reads them.
_ENCRYPTED = (EncryptedTextField, EncryptedJSONField)
_CLIENT_FIELDS = [
    field
    for field in model_fields(Client)
    if not isinstance(field, _ENCRYPTED) or field.name == "listener_token"
]
_CHANNEL_FIELDS = model_fields(Channel, skip=_ENCRYPTED)
_CHANNEL_PK = next(i for i, field in enumerate(_CHANNEL_FIELDS) if field.primary_key)
_LISTENER_TARGET_SQL = (
    f"SELECT {select_list(_CLIENT_FIELDS, 'c')}, {select_list(_CHANNEL_FIELDS, 'ch')} "  # noqa: S608
    f"FROM {Client._meta.db_table} c LEFT JOIN {Channel._meta.db_table} ch "
    "ON ch.client_id = c.id AND ch.optimove_channel_id = %s "
    "WHERE c.slug = %s AND c.is_active"
)


def listener_target_get(
    *, slug: str, optimove_channel_id: int | None
) -> tuple[Client | None, Channel | None]:
    """The active client a listener call names, and its channel with this Optimove ChannelID (active or
    not) when there is one, in one query: (None, None) for no such active client."""
    with connection.cursor() as cursor:
        cursor.execute(_LISTENER_TARGET_SQL, [optimove_channel_id, slug])
        row = cursor.fetchone()
    if row is None:
        return None, None
    split = len(_CLIENT_FIELDS)
    client = instance_from_row(Client, _CLIENT_FIELDS, row[:split])
    if row[split + _CHANNEL_PK] is None:  # no channel matched
        return client, None
    channel = instance_from_row(Channel, _CHANNEL_FIELDS, row[split:])
    channel.client = client
    return client, channel


# (slug, ChannelID) -> (when read, client, channel). Only known clients are kept, so a burst of calls
# for unknown slugs cannot grow it beyond the bound.
_listener_targets: dict[tuple[str, int | None], tuple[float, Client, Channel | None]] = {}
_LISTENER_TARGETS_MAX = 10_000


def listener_target_get_kept(
    *, slug: str, optimove_channel_id: int | None
) -> tuple[Client | None, Channel | None]:
    """`listener_target_get`, kept in this process for LISTENER_TARGET_CACHE_SECONDS: a real-time
    campaign calls the same listener hundreds of times a second, and each read is a round trip that waits
    its turn for PostgreSQL. A change to the client or channel (deactivated, token regenerated) is seen
    once the kept copy is older than that; an unknown client is read every time."""
    lifetime = settings.LISTENER_TARGET_CACHE_SECONDS
    if lifetime <= 0:
        return listener_target_get(slug=slug, optimove_channel_id=optimove_channel_id)
    key = (slug, optimove_channel_id)
    now = time.monotonic()
    kept = _listener_targets.get(key)
    if kept is not None and now - kept[0] < lifetime:
        return kept[1], kept[2]
    client, channel = listener_target_get(slug=slug, optimove_channel_id=optimove_channel_id)
    if client is None:
        _listener_targets.pop(key, None)
    else:
        if len(_listener_targets) >= _LISTENER_TARGETS_MAX:
            _listener_targets.clear()
        _listener_targets[key] = (now, client, channel)
    return client, channel


def listener_targets_forget() -> None:
    """Drops this process's kept listener targets (tests; a process that must see a change at once)."""
    _listener_targets.clear()
