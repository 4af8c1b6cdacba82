"""Optimove's functions, served at `/current/{category}/{Function}` (and without `current`).

One entry view finds the function (case-insensitively), then applies what Optimove applies, in order:
verb, authentication, rate limit, injected faults; then the function's handler parses its input,
calls one service or selector and answers in Optimove's shape. Every call leaves a `SandboxCall` row.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from apps.sandbox import selectors, services
from apps.sandbox.auth import AuthFailure, sandbox_authenticate, sandbox_login_check, sandbox_token_issue
from apps.sandbox.models import SandboxAccount, SandboxCall, default_fault_statuses
from apps.sandbox.parsing import BadRequest, Fields, body_array, body_object, customer_ids, parse_json_body
from apps.sandbox.ratelimit import rate_limit_try_acquire
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

MAX_PAGE_SIZE = 10_000
MAX_ITEMS_PER_CALL = 100
MAX_INTERACTION_CUSTOMERS = 10_000
MAX_PREFERENCE_CUSTOMERS = 50_000
MAX_ATTRIBUTES_PER_CUSTOMER = 10
MAX_BODY_BYTES = 32 * 1024 * 1024
KNOWN_EVENT_TYPES = (1, 2, 3, 4, 5, 11, 13, 14)
RATE_LIMITED_BODY = {
    "status": 429,
    "error": "Too Many Requests",
    "message": "You have exceeded the rate limit for this API group. Please retry later.",
}


@dataclass(frozen=True)
class Call:
    """One incoming call: its query string and raw body, parsed only when the handler asks."""

    query: Fields
    raw_body: bytes

    @cached_property
    def body(self) -> Any:
        return parse_json_body(self.raw_body)


Handler = Callable[[SandboxAccount, Call], HttpResponse]


@dataclass(frozen=True, slots=True)
class Endpoint:
    category: str
    name: str
    method: str
    handler: Handler


def _message(status: int, text: str) -> HttpResponse:
    return JsonResponse(text, status=status, safe=False)


def _done() -> HttpResponse:
    """Optimove's write functions answer 200 with an empty body."""
    return HttpResponse(b"", status=200, content_type="text/plain")


def _json(value: Any) -> HttpResponse:
    return JsonResponse(value, safe=False)


# ---------------------------------------------------------------------------------------------------
# general
# ---------------------------------------------------------------------------------------------------


def register_event_listener(account: SandboxAccount, call: Call) -> HttpResponse:
    fields = body_object(call.body)
    event_type_id = fields.required_int("EventTypeID")
    if event_type_id not in KNOWN_EVENT_TYPES:
        raise BadRequest(f"EventTypeID {event_type_id} is not a known event type")
    channel_id = fields.optional_int("ChannelID", minimum=1)
    if event_type_id == 5 and channel_id is not None:
        raise BadRequest("ChannelID must be absent for EventTypeID 5")
    services.sandbox_listener_register(
        account=account,
        event_type_id=event_type_id,
        listener_url=fields.required_url("ListenerURL"),
        channel_id=channel_id,
    )
    return _done()


def unregister_event_listener(account: SandboxAccount, call: Call) -> HttpResponse:
    fields = body_object(call.body)
    services.sandbox_listener_unregister(
        account=account,
        event_type_id=fields.required_int("EventTypeID"),
        channel_id=fields.optional_int("ChannelID", minimum=1),
    )
    return _done()


def get_registered_event_listeners(account: SandboxAccount, call: Call) -> HttpResponse:
    return _json(selectors.sandbox_listener_list(account=account))


# ---------------------------------------------------------------------------------------------------
# customers
# ---------------------------------------------------------------------------------------------------


def get_customer_send_details_by_channel(account: SandboxAccount, call: Call) -> HttpResponse:
    query = call.query
    channel_id = query.required_int("ChannelID", minimum=1)
    campaign_id = query.required_int("CampaignID", minimum=1)
    delimiter = query.optional_str("CustomerAttributesDelimiter", max_length=10)
    if delimiter is not None and delimiter not in (",", ";"):
        raise BadRequest("CustomerAttributesDelimiter must be ',' or ';'")
    names_text = query.optional_str("CustomerAttributes", max_length=4000) or ""
    names = [name.strip() for name in names_text.split(";") if name.strip()]
    top = query.optional_int("$top", minimum=1)
    skip = query.optional_int("$skip", minimum=0) or 0
    return _json(
        selectors.sandbox_send_details_page(
            account=account,
            campaign_id=campaign_id,
            channel_id=channel_id,
            attribute_names=names,
            top=min(top or MAX_PAGE_SIZE, MAX_PAGE_SIZE),
            skip=skip,
        )
    )


def get_canceled_campaign_customers(account: SandboxAccount, call: Call) -> HttpResponse:
    campaign_id = call.query.required_int("CampaignID", minimum=1)
    return _json(selectors.sandbox_canceled_customers(account=account, campaign_id=campaign_id))


def add_customer_attribute(account: SandboxAccount, call: Call) -> HttpResponse:
    fields = body_object(call.body)
    services.sandbox_attribute_add(
        account=account,
        name=fields.required_str("Name", max_length=200),
        attribute_type=fields.required_str("Type", max_length=50),
        default_value=fields.optional_scalar_as_str("DefaultValue"),
        callback_url=fields.optional_url("CallbackURL"),
    )
    return _done()


def update_customer_attributes(account: SandboxAccount, call: Call) -> HttpResponse:
    fields = body_object(call.body)
    items = fields.required_list(
        "CustomerNewAttributesValuesList", max_items=settings.SANDBOX_UPDATE_ATTRIBUTES_LIMIT
    )
    customers = []
    for position, item in enumerate(items):
        where = f"CustomerNewAttributesValuesList[{position}]"
        customer = Fields.of_object(item, where=where)
        attributes = customer.required_list("Attributes", max_items=MAX_ATTRIBUTES_PER_CUSTOMER)
        pairs = []
        for index, attribute in enumerate(attributes):
            value = Fields.of_object(attribute, where=f"{where}.Attributes[{index}]")
            pairs.append(
                (value.required_str("RealFieldName", max_length=200), value.optional_scalar_as_str("Value"))
            )
        customers.append(
            CustomerAttributesInput(
                customer_id=customer.required_str("CustomerID", max_length=200), attributes=tuple(pairs)
            )
        )
    services.sandbox_attributes_update(
        account=account, customers=customers, callback_url=fields.optional_url("CallbackURL")
    )
    return _done()


# ---------------------------------------------------------------------------------------------------
# actions
# ---------------------------------------------------------------------------------------------------


def get_campaign_details(account: SandboxAccount, call: Call) -> HttpResponse:
    campaign_id = call.query.required_int("CampaignID", minimum=1)
    details = selectors.sandbox_campaign_details(account=account, campaign_id=campaign_id)
    if details is None:
        raise BadRequest(f"CampaignID {campaign_id} was not found")
    return _json(details)


# ---------------------------------------------------------------------------------------------------
# integrations
# ---------------------------------------------------------------------------------------------------


def add_channel_templates(account: SandboxAccount, call: Call) -> HttpResponse:
    channel_id = call.query.required_int("ChannelID", minimum=1)
    templates = []
    for position, item in enumerate(body_array(call.body, max_items=MAX_ITEMS_PER_CALL)):
        fields = Fields.of_object(item, where=f"item {position}")
        templates.append(
            TemplateInput(
                template_id=fields.required_int("TemplateID"),
                template_name=fields.required_str("TemplateName", max_length=500),
            )
        )
    services.sandbox_templates_add(account=account, channel_id=channel_id, templates=templates)
    return _done()


def get_channel_templates(account: SandboxAccount, call: Call) -> HttpResponse:
    channel_id = call.query.required_int("ChannelID", minimum=1)
    return _json(selectors.sandbox_template_list(account=account, channel_id=channel_id))


def delete_channel_templates(account: SandboxAccount, call: Call) -> HttpResponse:
    refs = []
    for position, item in enumerate(body_array(call.body, max_items=MAX_ITEMS_PER_CALL)):
        fields = Fields.of_object(item, where=f"item {position}")
        refs.append(
            ChannelTemplateRef(
                channel_id=fields.required_int("ChannelID", minimum=1),
                template_id=fields.required_int("TemplateID"),
            )
        )
    services.sandbox_templates_delete(account=account, refs=refs)
    return _done()


def add_channel_apps(account: SandboxAccount, call: Call) -> HttpResponse:
    channel_id = call.query.required_int("ChannelID", minimum=1)
    apps = []
    for position, item in enumerate(body_array(call.body, max_items=MAX_ITEMS_PER_CALL)):
        fields = Fields.of_object(item, where=f"item {position}")
        apps.append(
            AppInput(
                app_id=fields.required_str("AppID", max_length=200),
                app_name=fields.required_str("AppName", max_length=500),
            )
        )
    services.sandbox_apps_add(account=account, channel_id=channel_id, apps=apps)
    return _done()


def delete_channel_apps(account: SandboxAccount, call: Call) -> HttpResponse:
    refs = []
    for position, item in enumerate(body_array(call.body, max_items=MAX_ITEMS_PER_CALL)):
        fields = Fields.of_object(item, where=f"item {position}")
        refs.append(
            ChannelAppRef(
                channel_id=fields.required_int("ChannelID", minimum=1),
                app_id=fields.required_str("AppID", max_length=200),
            )
        )
    services.sandbox_apps_delete(account=account, refs=refs)
    return _done()


def update_campaign_metrics(account: SandboxAccount, call: Call) -> HttpResponse:
    metrics = []
    for position, item in enumerate(body_array(call.body, max_items=MAX_ITEMS_PER_CALL)):
        fields = Fields.of_object(item, where=f"item {position}")
        metrics.append(
            MetricInput(
                channel_id=fields.required_int("ChannelID", minimum=1),
                campaign_id=fields.required_int("CampaignID", minimum=1),
                template_id=fields.required_int("TemplateID"),
                metric_id=fields.required_int("MetricID"),
                metric_value=fields.required_int("MetricValue"),
            )
        )
    services.sandbox_metrics_update(account=account, metrics=metrics)
    return _done()


def update_campaign_interactions(account: SandboxAccount, call: Call) -> HttpResponse:
    fields = body_object(call.body)
    services.sandbox_interactions_record(
        account=account,
        interactions=InteractionInput(
            campaign_id=fields.required_int("CampaignID", minimum=1),
            channel_id=fields.required_int("ChannelID", minimum=1),
            interaction_date=fields.required_date("InteractionDate"),
            template_id=fields.required_int("TemplateID"),
            event_id=fields.required_int("EventID"),
            recipient_group_id=fields.required_int("RecipientGroupID"),
            customer_ids=tuple(
                customer_ids(fields.required_list("CustomerIDs", max_items=MAX_INTERACTION_CUSTOMERS))
            ),
            app_id=fields.optional_str("AppID", max_length=200),
        ),
    )
    return _done()


def set_customer_channel_preference(account: SandboxAccount, call: Call) -> HttpResponse:
    fields = body_object(call.body)
    services.sandbox_preference_record(
        account=account,
        channel_id=fields.required_int("ChannelID", minimum=1),
        customer_ids=customer_ids(fields.required_list("CustomerIDs", max_items=MAX_PREFERENCE_CUSTOMERS)),
        communication_mode=fields.required_int("CommunicationMode"),
        app_id=fields.optional_str("AppID", max_length=200),
    )
    return _done()


def login(account: SandboxAccount, call: Call) -> HttpResponse:
    """Credentials were checked like any caller's; the token is issued only after limits and faults."""
    return _json(sandbox_token_issue(account=account))


_ENDPOINTS = (
    Endpoint("general", "login", "POST", login),
    Endpoint("general", "RegisterEventListener", "POST", register_event_listener),
    Endpoint("general", "UnregisterEventListener", "POST", unregister_event_listener),
    Endpoint("general", "GetRegisteredEventListeners", "GET", get_registered_event_listeners),
    Endpoint("customers", "GetCustomerSendDetailsByChannel", "GET", get_customer_send_details_by_channel),
    Endpoint("customers", "GetCanceledCampaignCustomers", "GET", get_canceled_campaign_customers),
    Endpoint("customers", "AddCustomerAttribute", "POST", add_customer_attribute),
    Endpoint("customers", "UpdateCustomerAttributes", "POST", update_customer_attributes),
    Endpoint("actions", "GetCampaignDetails", "GET", get_campaign_details),
    Endpoint("integrations", "AddChannelTemplates", "POST", add_channel_templates),
    Endpoint("integrations", "GetChannelTemplates", "GET", get_channel_templates),
    Endpoint("integrations", "DeleteChannelTemplates", "POST", delete_channel_templates),
    Endpoint("integrations", "AddChannelApps", "POST", add_channel_apps),
    Endpoint("integrations", "DeleteChannelApps", "POST", delete_channel_apps),
    Endpoint("integrations", "UpdateCampaignMetrics", "POST", update_campaign_metrics),
    Endpoint("integrations", "UpdateCampaignInteractions", "POST", update_campaign_interactions),
    Endpoint("integrations", "SetCustomerChannelPreference", "POST", set_customer_channel_preference),
)
ENDPOINTS: dict[tuple[str, str], Endpoint] = {(e.category, e.name.lower()): e for e in _ENDPOINTS}


# ---------------------------------------------------------------------------------------------------
# The entry view
# ---------------------------------------------------------------------------------------------------


@csrf_exempt
def optimove_function(request: HttpRequest, category: str, function: str) -> HttpResponse:
    endpoint = ENDPOINTS.get((category.lower(), function.lower()))
    if endpoint is None:
        SandboxCall.objects.create(function=function[:100], method=request.method or "", status=404)
        return _message(404, f"Unknown function {category}/{function}")
    try:
        response, account = _answer(request, endpoint)
    except Exception:
        logger.exception("sandbox: %s failed", endpoint.name)
        response, account = _message(500, "An error has occurred."), None
    SandboxCall.objects.create(
        account=account, function=endpoint.name, method=request.method or "", status=response.status_code
    )
    return response


def _answer(request: HttpRequest, endpoint: Endpoint) -> tuple[HttpResponse, SandboxAccount | None]:
    if request.method != endpoint.method:
        response = _message(405, f"The requested resource does not support http method '{request.method}'.")
        response["Allow"] = endpoint.method
        return response, None
    account: SandboxAccount | None = None
    try:
        call = Call(query=Fields(request.GET.dict(), from_query=True), raw_body=_read_body(request))
        account = _authenticate(request, endpoint, call)
        refused = _refuse(account)
        if refused is not None:
            return refused, account
        with transaction.atomic():
            return endpoint.handler(account, call), account
    except AuthFailure as failure:
        return _message(failure.status, failure.message), account
    except BadRequest as bad:
        return _message(400, str(bad)), account


def _read_body(request: HttpRequest) -> bytes:
    """The raw body, read from the stream: `request.body` caps it at DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB),
    less than a legitimate SetCustomerChannelPreference with 50,000 long customer ids."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadRequest("Content-Length is not a number") from None
    if length > MAX_BODY_BYTES:
        raise BadRequest(f"The request body is larger than {MAX_BODY_BYTES} bytes")
    return request.read(length) if length else b""


def _authenticate(request: HttpRequest, endpoint: Endpoint, call: Call) -> SandboxAccount:
    if endpoint.handler is login:
        fields = body_object(call.body)
        return sandbox_login_check(
            username=fields.required_str("UserName", max_length=200),
            password=fields.required_str("Password", max_length=200),
        )
    return sandbox_authenticate(
        api_key=request.headers.get("X-API-KEY"), token=request.headers.get("Authorization-Token")
    )


def _refuse(account: SandboxAccount) -> HttpResponse | None:
    """Over the rate limit, or picked for an injected fault: answered before any work is done."""
    if account.enforce_rate_limit and not rate_limit_try_acquire(
        account_id=account.pk, nonce=uuid.uuid4().hex
    ):
        return JsonResponse(RATE_LIMITED_BODY, status=429)
    if account.fault_rate > 0 and random.random() < account.fault_rate:
        status = int(random.choice(account.fault_statuses or default_fault_statuses()))
        if status == 429:
            return JsonResponse(RATE_LIMITED_BODY, status=429)
        return _message(status, "Injected fault (sandbox)")
    return None
