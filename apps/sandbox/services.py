"""Writes of the sandbox: what it stores when called, campaigns, firing notifications, bootstrap."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.clients.models import Channel, ChannelKind, Client
from apps.core.http import TimeoutSession
from apps.core.logging import redact
from apps.sandbox.generator import ATTRIBUTE_KINDS, attribute_kind_is_known, generate_customers
from apps.sandbox.models import (
    CallbackStatus,
    SandboxAccount,
    SandboxApp,
    SandboxAttribute,
    SandboxAttributeUpdate,
    SandboxCampaign,
    SandboxInteraction,
    SandboxListener,
    SandboxMetric,
    SandboxNotification,
    SandboxPreference,
    SandboxTemplate,
)
from apps.sandbox.parsing import BadRequest
from apps.sandbox.selectors import OPTIMOVE_TIME_FORMAT, campaign_shape
from apps.sandbox.types import (
    AppInput,
    ChannelAppRef,
    ChannelTemplateRef,
    CustomerAttributesInput,
    InteractionInput,
    MetricInput,
    TemplateInput,
)

logger = logging.getLogger(__name__)

MAX_API_ATTRIBUTES = 40
CALLBACK_TIMEOUT_SECONDS = 10.0
LISTENER_TIMEOUT_SECONDS = 10.0
FIRE_EVENT_TYPES = (1, 4, 5, 11, 13)
# Listeners for these are registered per channel; 4 and 5 once per account, without a channel.
CHANNEL_EVENT_TYPES = (1, 11, 13)
DEFAULT_CLEARANCE_SECONDS = 300
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


class SandboxInputError(ValueError):
    """Bad input to a sandbox command or admin form; the message says what is wrong."""


# ---------------------------------------------------------------------------------------------------
# Listeners, templates, apps
# ---------------------------------------------------------------------------------------------------


def sandbox_listener_register(
    *, account: SandboxAccount, event_type_id: int, listener_url: str, channel_id: int | None
) -> SandboxListener:
    """Registers (or re-points) the one listener for this account, event type and channel."""
    listener, _ = SandboxListener.objects.update_or_create(
        account=account,
        event_type_id=event_type_id,
        channel_id=channel_id,
        defaults={"listener_url": listener_url},
    )
    return listener


def sandbox_listener_unregister(
    *, account: SandboxAccount, event_type_id: int, channel_id: int | None
) -> int:
    deleted, _ = SandboxListener.objects.filter(
        account=account, event_type_id=event_type_id, channel_id=channel_id
    ).delete()
    return deleted


def sandbox_templates_add(
    *, account: SandboxAccount, channel_id: int, templates: Sequence[TemplateInput]
) -> None:
    """Adds templates, renaming those that exist. A TemplateID given twice keeps its last name."""
    latest = {t.template_id: t.template_name for t in templates}
    SandboxTemplate.objects.bulk_create(
        [
            SandboxTemplate(account=account, channel_id=channel_id, template_id=tid, template_name=name)
            for tid, name in latest.items()
        ],
        update_conflicts=True,
        unique_fields=["account", "channel_id", "template_id"],
        update_fields=["template_name", "updated_at"],
    )


def sandbox_templates_delete(*, account: SandboxAccount, refs: Sequence[ChannelTemplateRef]) -> int:
    condition = Q()
    for ref in refs:
        condition |= Q(channel_id=ref.channel_id, template_id=ref.template_id)
    deleted, _ = SandboxTemplate.objects.filter(condition, account=account).delete()
    return deleted


def sandbox_apps_add(*, account: SandboxAccount, channel_id: int, apps: Sequence[AppInput]) -> None:
    latest = {a.app_id: a.app_name for a in apps}
    SandboxApp.objects.bulk_create(
        [
            SandboxApp(account=account, channel_id=channel_id, app_id=app_id, app_name=name)
            for app_id, name in latest.items()
        ],
        update_conflicts=True,
        unique_fields=["account", "channel_id", "app_id"],
        update_fields=["app_name", "updated_at"],
    )


def sandbox_apps_delete(*, account: SandboxAccount, refs: Sequence[ChannelAppRef]) -> int:
    condition = Q()
    for ref in refs:
        condition |= Q(channel_id=ref.channel_id, app_id=ref.app_id)
    deleted, _ = SandboxApp.objects.filter(condition, account=account).delete()
    return deleted


# ---------------------------------------------------------------------------------------------------
# Reporting and preferences
# ---------------------------------------------------------------------------------------------------


def sandbox_metrics_update(*, account: SandboxAccount, metrics: Sequence[MetricInput]) -> None:
    """Keeps the latest total per (channel, campaign, template, metric): totals replace, never add."""
    latest = {(m.channel_id, m.campaign_id, m.template_id, m.metric_id): m.metric_value for m in metrics}
    SandboxMetric.objects.bulk_create(
        [
            SandboxMetric(
                account=account,
                channel_id=channel_id,
                campaign_id=campaign_id,
                template_id=template_id,
                metric_id=metric_id,
                metric_value=value,
            )
            for (channel_id, campaign_id, template_id, metric_id), value in latest.items()
        ],
        update_conflicts=True,
        unique_fields=["account", "channel_id", "campaign_id", "template_id", "metric_id"],
        update_fields=["metric_value", "updated_at"],
    )


def sandbox_interactions_record(
    *, account: SandboxAccount, interactions: InteractionInput
) -> SandboxInteraction:
    return SandboxInteraction.objects.create(
        account=account,
        campaign_id=interactions.campaign_id,
        channel_id=interactions.channel_id,
        interaction_date=interactions.interaction_date,
        template_id=interactions.template_id,
        event_id=interactions.event_id,
        recipient_group_id=interactions.recipient_group_id,
        app_id=interactions.app_id or "",
        customer_ids=list(interactions.customer_ids),
    )


def sandbox_preference_record(
    *,
    account: SandboxAccount,
    channel_id: int,
    customer_ids: Sequence[str],
    communication_mode: int,
    app_id: str | None,
) -> SandboxPreference:
    return SandboxPreference.objects.create(
        account=account,
        channel_id=channel_id,
        communication_mode=communication_mode,
        app_id=app_id or "",
        customer_ids=list(customer_ids),
    )


# ---------------------------------------------------------------------------------------------------
# Customer attributes
# ---------------------------------------------------------------------------------------------------


@transaction.atomic
def sandbox_attribute_add(
    *, account: SandboxAccount, name: str, attribute_type: str, default_value: str, callback_url: str
) -> SandboxAttribute:
    """Creates an attribute; at most 40 per account, names unique regardless of case."""
    # Locking the account row makes concurrent calls count one after the other.
    SandboxAccount.objects.select_for_update().filter(pk=account.pk).first()
    if SandboxAttribute.objects.filter(account=account, name__iexact=name).exists():
        raise BadRequest(f"Name: an attribute named {name!r} already exists")
    if SandboxAttribute.objects.filter(account=account).count() >= MAX_API_ATTRIBUTES:
        raise BadRequest(f"Name: at most {MAX_API_ATTRIBUTES} attributes can be created through the API")
    return SandboxAttribute.objects.create(
        account=account,
        name=name,
        type=attribute_type,
        default_value=default_value,
        callback_url=callback_url,
    )


def sandbox_attributes_update(
    *, account: SandboxAccount, customers: Sequence[CustomerAttributesInput], callback_url: str
) -> SandboxAttributeUpdate:
    """Records the call and, once it is committed, answers on the callback URL from a short thread.

    Names the account never created through AddCustomerAttribute are reported as errors in the callback,
    as Optimove reports them asynchronously rather than refusing the call.
    """
    known = {
        name.lower()
        for name in SandboxAttribute.objects.filter(account=account).values_list("name", flat=True)
    }
    errors = [
        f"CustomerID {customer.customer_id}: unknown attribute {field!r}"
        for customer in customers
        for field, _ in customer.attributes
        if field.lower() not in known
    ]
    update = SandboxAttributeUpdate.objects.create(
        account=account,
        request_id=uuid.uuid4(),
        customers=[
            {
                "CustomerID": c.customer_id,
                "Attributes": [{"RealFieldName": f, "Value": v} for f, v in c.attributes],
            }
            for c in customers
        ],
        callback_url=callback_url,
        is_success=not errors,
        errors=errors,
        callback_status=CallbackStatus.PENDING if callback_url else CallbackStatus.NONE,
    )
    if callback_url:
        update_id = update.pk
        transaction.on_commit(
            lambda: threading.Thread(
                target=_deliver_attribute_callback,
                args=(update_id,),
                name=f"sandbox-callback-{update_id}",
                daemon=True,
            ).start()
        )
    return update


def _deliver_attribute_callback(update_id: int) -> None:
    """Runs in its own thread after the call committed; uses (and closes) its own DB connection."""
    try:
        update = SandboxAttributeUpdate.objects.get(pk=update_id)
        body = {"isSuccess": update.is_success, "requestId": str(update.request_id), "errors": update.errors}
        status: int | None = None
        error = ""
        try:
            with TimeoutSession(timeout=CALLBACK_TIMEOUT_SECONDS, pool_maxsize=1) as session:
                response = session.post(update.callback_url, json=body, allow_redirects=False)
            status = response.status_code
        except requests.RequestException as exc:
            error = redact(f"{type(exc).__name__}: {exc}")[:500]
        delivered = status is not None and 200 <= status < 300
        SandboxAttributeUpdate.objects.filter(pk=update_id).update(
            callback_status=CallbackStatus.DELIVERED if delivered else CallbackStatus.FAILED,
            callback_http_status=status,
            callback_error=error,
            updated_at=timezone.now(),
        )
    except Exception:
        logger.exception("sandbox: attribute update callback %s failed", update_id)
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------------------
# Campaigns
# ---------------------------------------------------------------------------------------------------


def _positive_ints(values: Sequence[int], *, what: str, minimum: int) -> list[int]:
    if not isinstance(values, list | tuple):
        raise SandboxInputError(f"{what}: a list of whole numbers is required")
    if not values:
        raise SandboxInputError(f"{what}: at least one value is required")
    result = []
    for value in values:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise SandboxInputError(f"{what}: {value!r} is not a whole number of at least {minimum}")
        result.append(value)
    return result


def _valid_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(attributes, Mapping):
        raise SandboxInputError('attributes: an object of name → kind is required, e.g. {"Email": "email"}')
    for name, kind in attributes.items():
        if not isinstance(kind, str):
            raise SandboxInputError(f"attributes: the kind of {name} must be a string")
        if not _ATTRIBUTE_NAME.match(name):
            raise SandboxInputError(
                f"attributes: {name!r} is not a valid attribute name (letters, digits, _ . -)"
            )
        if not attribute_kind_is_known(kind):
            raise SandboxInputError(
                f"attributes: unknown kind {kind!r} for {name}; known kinds: {', '.join(ATTRIBUTE_KINDS)}"
            )
    return dict(attributes)


def sandbox_campaign_validate(*, template_ids: Any, send_offsets_seconds: Any, attributes: Any) -> None:
    """Raises SandboxInputError naming what the generator could not use (the admin form calls this)."""
    _positive_ints(template_ids, what="templates", minimum=1)
    _positive_ints(send_offsets_seconds, what="send offsets", minimum=0)
    _valid_attributes(attributes)


@transaction.atomic
def sandbox_campaign_upsert(
    *,
    account: SandboxAccount,
    campaign_id: int,
    channel_id: int,
    size: int | None = None,
    seed: int | None = None,
    template_ids: Sequence[int] | None = None,
    send_offsets_seconds: Sequence[int] | None = None,
    attributes: Mapping[str, str] | None = None,
    base_time: datetime | None = None,
    cancelled_count: int | None = None,
) -> tuple[SandboxCampaign, bool]:
    """Creates the campaign or updates the values given; (campaign, created). Idempotent."""
    if campaign_id < 1 or channel_id < 1:
        raise SandboxInputError("campaign id and channel id must be positive")
    if size is not None and size < 0:
        raise SandboxInputError("size must not be negative")
    if seed is not None and not 0 <= seed <= 2_147_483_647:
        raise SandboxInputError("seed must be between 0 and 2147483647")
    if base_time is not None and timezone.is_naive(base_time):
        raise SandboxInputError("base time must be timezone-aware")
    values: dict[str, Any] = {}
    if size is not None:
        values["size"] = size
    if seed is not None:
        values["seed"] = seed
    if template_ids is not None:
        values["template_ids"] = _positive_ints(template_ids, what="templates", minimum=1)
    if send_offsets_seconds is not None:
        values["send_offsets_seconds"] = _positive_ints(send_offsets_seconds, what="send offsets", minimum=0)
    if attributes is not None:
        values["attributes"] = _valid_attributes(attributes)
    if base_time is not None:
        values["base_time"] = base_time
    if cancelled_count is not None:
        if cancelled_count < 0:
            raise SandboxInputError("cancelled count must not be negative")
        values["cancelled_count"] = cancelled_count

    campaign = (
        SandboxCampaign.objects.select_for_update()
        .filter(account=account, campaign_id=campaign_id, channel_id=channel_id)
        .first()
    )
    created = campaign is None
    if campaign is None:
        if size is None:
            raise SandboxInputError("size is required to create a campaign")
        campaign = SandboxCampaign(account=account, campaign_id=campaign_id, channel_id=channel_id)
    for field, value in values.items():
        setattr(campaign, field, value)
    if campaign.cancelled_count > campaign.size:
        raise SandboxInputError(
            f"cancelled count {campaign.cancelled_count} exceeds the size {campaign.size}"
        )
    campaign.save()
    return campaign, created


# ---------------------------------------------------------------------------------------------------
# Playing Optimove: notifications to registered listeners
# ---------------------------------------------------------------------------------------------------


class SandboxFireError(Exception):
    """Nothing could be fired: no listener registered, or the arguments do not fit the event type."""


def _optimove_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(OPTIMOVE_TIME_FORMAT)


def _realtime_defaults(
    *, account: SandboxAccount, campaign_id: int, channel_id: int
) -> tuple[str, int, dict[str, str]] | None:
    """Customer 0 of the sandbox campaign: its id, template and attributes as personalization."""
    campaign = SandboxCampaign.objects.filter(
        account=account, campaign_id=campaign_id, channel_id=channel_id
    ).first()
    if campaign is None or campaign.size == 0:
        return None
    names = list(campaign.attributes)
    customer = next(generate_customers(campaign_shape(campaign), skip=0, top=1, requested_attributes=names))
    return (
        customer.customer_id,
        customer.template_id,
        dict(zip(names, customer.attribute_values, strict=True)),
    )


def sandbox_notification_body(
    *,
    event_type_id: int,
    campaign_id: int,
    channel_id: int | None,
    now: datetime,
    clearance_in_seconds: int = DEFAULT_CLEARANCE_SECONDS,
    customer_id: str = "",
    template_id: int | None = None,
    promo_code: str = "",
    personalization: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The body Optimove POSTs for this event type (PascalCase, except camelCase for 11)."""
    stamp = _optimove_time(now)
    if event_type_id == 11:
        return {
            "eventTypeID": 11,
            "timeStamp": stamp,
            "campaignID": campaign_id,
            "channelID": channel_id,
            "templateID": template_id,
            "customerID": customer_id,
            "promoCode": promo_code,
            "personalization": dict(personalization or {}),
        }
    body: dict[str, Any] = {"EventTypeID": event_type_id, "TimeStamp": stamp, "CampaignID": campaign_id}
    if event_type_id == 13:
        body["ChannelID"] = channel_id
    if event_type_id == 5:
        body["ClearanceRequiredBy"] = _optimove_time(now + timedelta(seconds=clearance_in_seconds))
    return body


def sandbox_fire(
    *,
    account: SandboxAccount,
    event_type_id: int,
    campaign_id: int,
    channel_id: int | None = None,
    clearance_in_seconds: int | None = None,
    customer_id: str | None = None,
    template_id: int | None = None,
    promo_code: str = "",
    personalization: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> list[SandboxNotification]:
    """POSTs the notification to every listener registered with the sandbox for it; one row each.

    For 1, 11 and 13 the listeners of `channel_id` are called (for 1 without a channel, every type-1
    listener); 4 and 5 go to the account's listeners of that type, which carry no channel.
    For 11 without a customer, customer 0 of the sandbox campaign is used, with its attributes.
    """
    if event_type_id not in FIRE_EVENT_TYPES:
        raise SandboxFireError(
            f"event type {event_type_id} cannot be fired; choose one of {FIRE_EVENT_TYPES}"
        )
    if event_type_id in (11, 13) and channel_id is None:
        raise SandboxFireError(f"a channel id is required for event type {event_type_id}")
    if clearance_in_seconds is not None and clearance_in_seconds < 0:
        raise SandboxFireError("the clearance delay must not be negative")
    listeners = SandboxListener.objects.filter(account=account, event_type_id=event_type_id)
    if event_type_id in CHANNEL_EVENT_TYPES and channel_id is not None:
        listeners = listeners.filter(channel_id=channel_id)
    targets = list(listeners.order_by("channel_id", "id"))
    if not targets:
        where = f", channel {channel_id}" if event_type_id in CHANNEL_EVENT_TYPES and channel_id else ""
        raise SandboxFireError(
            f"No listener is registered with the sandbox for account {account.name!r}, event type "
            f"{event_type_id}{where}. Register one with RegisterEventListener first."
        )
    if event_type_id == 11 and (customer_id is None or template_id is None):
        assert channel_id is not None
        defaults = _realtime_defaults(account=account, campaign_id=campaign_id, channel_id=channel_id)
        if defaults is None:
            raise SandboxFireError(
                "event type 11 needs a customer id and a template id, or a sandbox campaign "
                f"{campaign_id} on channel {channel_id} to take its first customer from"
            )
        customer_id = customer_id if customer_id is not None else defaults[0]
        template_id = template_id if template_id is not None else defaults[1]
        personalization = personalization if personalization is not None else defaults[2]
    body = sandbox_notification_body(
        event_type_id=event_type_id,
        campaign_id=campaign_id,
        channel_id=channel_id,
        now=now or timezone.now(),
        clearance_in_seconds=DEFAULT_CLEARANCE_SECONDS
        if clearance_in_seconds is None
        else clearance_in_seconds,
        customer_id=customer_id or "",
        template_id=template_id,
        promo_code=promo_code,
        personalization=personalization,
    )
    notifications = []
    with TimeoutSession(timeout=LISTENER_TIMEOUT_SECONDS, pool_maxsize=1) as session:
        for listener in targets:
            notifications.append(
                _deliver(session=session, account=account, url=listener.listener_url, body=body)
            )
    return notifications


def _deliver(
    *, session: requests.Session, account: SandboxAccount, url: str, body: dict[str, Any]
) -> SandboxNotification:
    started = time.monotonic()
    status: int | None = None
    error = ""
    try:
        status = session.post(url, json=body, allow_redirects=False).status_code
    except requests.RequestException as exc:
        # Exception texts carry the URL, and with it the listener token: redacted before storing.
        error = redact(f"{type(exc).__name__}: {exc}")[:500]
    return SandboxNotification.objects.create(
        account=account,
        event_type_id=int(body.get("EventTypeID", body.get("eventTypeID", 0))),
        url=url,
        body=body,
        status_code=status,
        duration_ms=round((time.monotonic() - started) * 1000),
        error=error,
    )


# ---------------------------------------------------------------------------------------------------
# Bootstrap for `make run`
# ---------------------------------------------------------------------------------------------------

LOCAL_ACCOUNT = "local"
DEMO_CLIENT_SLUG = "demo"


@dataclass(frozen=True, slots=True)
class DemoChannel:
    channel_id: int
    name: str
    kind: str
    address_attribute: str
    is_realtime: bool = False


DEMO_CHANNELS = (
    DemoChannel(504, "Email", ChannelKind.EMAIL, "Email"),
    DemoChannel(505, "SMS", ChannelKind.SMS, "Phone"),
    DemoChannel(510, "Webhook", ChannelKind.WEBHOOK, "WebhookURL"),
    DemoChannel(520, "Real-time SMS", ChannelKind.SMS, "Phone", is_realtime=True),
)


@transaction.atomic
def sandbox_bootstrap(*, public_base_url: str) -> list[str]:
    """Ensures the local account, the demo client and channels and a demo campaign; says what it did."""
    base_url = public_base_url.rstrip("/")
    if not re.match(r"^https?://[^\s/]+", base_url):
        raise SandboxInputError(f"public base URL must be an http(s) URL, got {public_base_url!r}")
    done: list[str] = []

    account, created = SandboxAccount.objects.get_or_create(
        name=LOCAL_ACCOUNT, defaults={"username": "local"}
    )
    done.append(f"{'Created' if created else 'Kept'} sandbox account {account.name!r}")

    client = Client.objects.filter(slug=DEMO_CLIENT_SLUG).first()
    if client is None:
        Client.objects.create(
            slug=DEMO_CLIENT_SLUG,
            name="Demo (sandbox)",
            optimove_base_url=base_url,
            optimove_api_key=account.api_key,
        )
        done.append(f"Created client {DEMO_CLIENT_SLUG!r} pointing at the sandbox on {base_url}")
        client = Client.objects.get(slug=DEMO_CLIENT_SLUG)
    elif client.optimove_base_url != base_url or client.optimove_api_key != account.api_key:
        client.optimove_base_url = base_url
        client.optimove_api_key = account.api_key
        client.save(update_fields=["optimove_base_url", "optimove_api_key", "updated_at"])
        done.append(f"Updated client {DEMO_CLIENT_SLUG!r} to use the sandbox on {base_url}")
    else:
        done.append(f"Kept client {DEMO_CLIENT_SLUG!r}")

    for demo in DEMO_CHANNELS:
        _, created = Channel.objects.get_or_create(
            client=client,
            optimove_channel_id=demo.channel_id,
            defaults={
                "name": demo.name,
                "kind": demo.kind,
                "provider": "console",
                "address_attribute": demo.address_attribute,
                "is_realtime": demo.is_realtime,
            },
        )
        done.append(f"{'Created' if created else 'Kept'} channel {demo.channel_id} ({demo.name})")

    done.extend(_demo_templates(client))
    done.extend(_demo_listeners(account=account, client=client, public_base_url=base_url))

    campaign, created = SandboxCampaign.objects.get_or_create(
        account=account,
        campaign_id=1111,
        channel_id=504,
        defaults={
            "size": 1000,
            "seed": 1111,
            "template_ids": [14, 15],
            "send_offsets_seconds": [0, 5, 15],
            "attributes": {"Email": "email", "FirstName": "first_name", "Country": "country"},
        },
    )
    done.append(f"{'Created' if created else 'Kept'} sandbox {campaign}")
    # The real-time demo: `sandbox_fire --event-type 11` takes a customer of this campaign.
    campaign, created = SandboxCampaign.objects.get_or_create(
        account=account,
        campaign_id=2001,
        channel_id=520,
        defaults={
            "size": 100,
            "seed": 2001,
            "template_ids": [14],
            "send_offsets_seconds": [0],
            "attributes": {"Phone": "phone", "FirstName": "first_name"},
        },
    )
    done.append(f"{'Created' if created else 'Kept'} sandbox {campaign}")
    return done


DEMO_TEMPLATES: dict[str, dict[str, Any]] = {
    ChannelKind.EMAIL: {
        "subject": "Spring offers for {{ FirstName | default('you') }}",
        "text_body": "Hello {{ FirstName | default('there') }}, spring is here in "
        "{{ Country | default('your town') }}.",
        "html_body": "<p>Hello <b>{{ FirstName | default('there') }}</b>, spring is here.</p>",
    },
    ChannelKind.SMS: {"text_body": "Hi {{ FirstName | default('there') }}: 20% off this week only."},
    ChannelKind.WEBHOOK: {
        "payload": {"greeting": "Hello {{ FirstName | default('there') }}", "offer": "SPRING20"}
    },
}


def _demo_templates(client: Client) -> list[str]:
    """Templates 14 and 15 on every demo channel, so a fired demo campaign renders something. Templates
    already there are kept as they are (they may have been edited in the admin)."""
    from apps.message_templates.models import MessageTemplate
    from apps.message_templates.services import template_upsert

    done = []
    for channel in client.channels.all():
        for template_id, name in ((14, "Spring welcome"), (15, "Spring reminder")):
            if MessageTemplate.objects.filter(channel=channel, template_id=template_id).exists():
                continue
            template_upsert(
                channel=channel, template_id=template_id, name=name, **DEMO_TEMPLATES[channel.kind]
            )
            done.append(f"Created template {template_id} on channel {channel.optimove_channel_id}")
    return done


def _demo_listeners(*, account: SandboxAccount, client: Client, public_base_url: str) -> list[str]:
    """Registers the demo client's listeners with the sandbox, as optimove_register_listeners would once
    the web server is up, so `sandbox_fire` works right after `make run`."""
    from apps.optimove.listeners import desired_listeners

    done = []
    for wanted in desired_listeners(client=client, public_base_url=public_base_url):
        existing = SandboxListener.objects.filter(
            account=account, event_type_id=wanted.event_type_id, channel_id=wanted.channel_id
        ).first()
        if existing is None or existing.listener_url != wanted.listener_url:
            sandbox_listener_register(
                account=account,
                event_type_id=wanted.event_type_id,
                listener_url=wanted.listener_url,
                channel_id=wanted.channel_id,
            )
            where = f"channel {wanted.channel_id}" if wanted.channel_id else "the client"
            done.append(f"Registered listener for EventTypeID {wanted.event_type_id} on {where}")
    return done
