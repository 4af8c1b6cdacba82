"""Which listeners Optimove should call for a client, and bringing Optimove's list in line."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse

from apps.clients.models import Client
from apps.optimove.client import OptimoveClient, optimove_client_for
from apps.optimove.types import EventListener, EventType

CLIENT_WIDE = "client"


def listener_url(*, client: Client, channel_id: int | None, public_base_url: str | None = None) -> str:
    path = reverse(
        "optimove-listener", kwargs={"client_slug": client.slug, "channel": str(channel_id or CLIENT_WIDE)}
    )
    base = (public_base_url or settings.PUBLIC_BASE_URL).rstrip("/")
    return f"{base}{path}?{urlencode({'token': client.listener_token})}"


def desired_listeners(*, client: Client, public_base_url: str | None = None) -> list[EventListener]:
    """13 (or 1 where a channel is set to it) per scheduled channel, 11 per real-time channel, and 4 and 5
    once per client (5 must be registered without a channel)."""
    wanted: list[EventListener] = []
    for channel in client.channels.filter(is_active=True).order_by("optimove_channel_id"):
        event = EventType.REALTIME_TRIGGER if channel.is_realtime else channel.scheduled_event_type
        wanted.append(
            EventListener(
                event_type_id=int(event),
                listener_url=listener_url(
                    client=client, channel_id=channel.optimove_channel_id, public_base_url=public_base_url
                ),
                channel_id=channel.optimove_channel_id,
            )
        )
    for event in (EventType.CAMPAIGN_CANCELLED, EventType.CONDITIONAL_PROMOTION):
        wanted.append(
            EventListener(
                event_type_id=int(event),
                listener_url=listener_url(client=client, channel_id=None, public_base_url=public_base_url),
            )
        )
    return wanted


@dataclass(frozen=True, slots=True)
class ListenerChange:
    action: str  # "register" | "unregister" | "keep"
    event_type_id: int
    channel_id: int | None

    def describe(self) -> str:
        where = f"channel {self.channel_id}" if self.channel_id is not None else "the client"
        return f"{self.action} EventTypeID {self.event_type_id} for {where}"


def _ours(listener: EventListener, *, client: Client, channel_ids: set[int]) -> bool:
    """A registration this client's platform set-up is responsible for."""
    base = f"{settings.PUBLIC_BASE_URL}/optimove/listener/{client.slug}/"
    return listener.listener_url.startswith(base) or (
        listener.channel_id is not None and listener.channel_id in channel_ids
    )


def listeners_sync(
    *, client: Client, dry_run: bool = False, api: OptimoveClient | None = None
) -> list[ListenerChange]:
    api = api or optimove_client_for(client)
    wanted = {(w.event_type_id, w.channel_id): w for w in desired_listeners(client=client)}
    channel_ids = set(client.channels.values_list("optimove_channel_id", flat=True))
    current = {(c.event_type_id, c.channel_id): c for c in api.get_registered_event_listeners()}
    changes: list[ListenerChange] = []
    for key, existing in sorted(current.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        want = wanted.get(key)
        if want is not None and want.listener_url == existing.listener_url:
            changes.append(ListenerChange("keep", *key))
        elif want is not None or _ours(existing, client=client, channel_ids=channel_ids):
            changes.append(ListenerChange("unregister", *key))
            if not dry_run:
                api.unregister_event_listener(event_type_id=key[0], channel_id=key[1])
    for key, want in sorted(wanted.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        registered = current.get(key)
        if registered is None or registered.listener_url != want.listener_url:
            changes.append(ListenerChange("register", *key))
            if not dry_run:
                api.register_event_listener(
                    event_type_id=want.event_type_id,
                    listener_url=want.listener_url,
                    channel_id=want.channel_id,
                )
    return changes
