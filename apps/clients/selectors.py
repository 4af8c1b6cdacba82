"""Reads of clients and channels, including which clients a staff user may see."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

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
