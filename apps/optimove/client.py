"""The typed Optimove API client: the only code in the platform that talks to Optimove.

Every call goes through `OptimoveClient._call`, which
- authenticates (API key, or the legacy login token shared through Redis, re-fetched once after a 403),
- waits for a slot in the rate limiter that all processes share for this API key,
- retries connection errors, timeouts, 429 and 5xx with exponential backoff and full jitter,
- turns everything else into `OptimoveTerminalError` at once,
- logs one line per HTTP attempt with the function, status, duration and attempt, nothing more.

Bodies that can carry customer data or secrets (customer ids, attributes, listener URLs, passwords)
never reach a log line or an exception message.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import redis
import requests
from django.conf import settings

from apps.core.http import TimeoutSession
from apps.core.redis import get_redis
from apps.metrics.recorders import optimove_request_observe
from apps.optimove import parsing
from apps.optimove.auth import SharedLoginToken
from apps.optimove.errors import (
    OptimoveAuthError,
    OptimoveRateLimited,
    OptimoveRetryableError,
    OptimoveTerminalError,
)
from apps.optimove.ratelimit import RateLimitWaitTimeout, SlidingWindowLimiter
from apps.optimove.types import (
    CampaignDetails,
    CampaignInteractions,
    CampaignMetric,
    CanceledCustomer,
    ChannelApp,
    ChannelTemplate,
    Credentials,
    CustomerAttributeUpdate,
    EventListener,
    EventType,
    SendDetailsPage,
)

if TYPE_CHECKING:
    from apps.clients.models import Client

logger = logging.getLogger(__name__)

# Every Optimove function we call: HTTP method and path below the client's base URL. Optimove documents
# the customer-attribute functions without the `current/` prefix, so they are kept that way.
OPTIMOVE_FUNCTIONS: dict[str, tuple[str, str]] = {
    "login": ("POST", "current/general/login"),
    "RegisterEventListener": ("POST", "current/general/RegisterEventListener"),
    "UnregisterEventListener": ("POST", "current/general/UnregisterEventListener"),
    "GetRegisteredEventListeners": ("GET", "current/general/GetRegisteredEventListeners"),
    "GetCustomerSendDetailsByChannel": ("GET", "current/customers/GetCustomerSendDetailsByChannel"),
    "GetCanceledCampaignCustomers": ("GET", "current/customers/GetCanceledCampaignCustomers"),
    "GetCampaignDetails": ("GET", "current/actions/GetCampaignDetails"),
    "AddChannelTemplates": ("POST", "current/integrations/AddChannelTemplates"),
    "GetChannelTemplates": ("GET", "current/integrations/GetChannelTemplates"),
    "DeleteChannelTemplates": ("POST", "current/integrations/DeleteChannelTemplates"),
    "AddChannelApps": ("POST", "current/integrations/AddChannelApps"),
    "DeleteChannelApps": ("POST", "current/integrations/DeleteChannelApps"),
    "UpdateCampaignMetrics": ("POST", "current/integrations/UpdateCampaignMetrics"),
    "UpdateCampaignInteractions": ("POST", "current/integrations/UpdateCampaignInteractions"),
    "SetCustomerChannelPreference": ("POST", "current/integrations/SetCustomerChannelPreference"),
    "AddCustomerAttribute": ("POST", "customers/AddCustomerAttribute"),
    "UpdateCustomerAttributes": ("POST", "customers/UpdateCustomerAttributes"),
}

# Optimove's documented per-call limits.
TEMPLATES_PER_CALL = 100
APPS_PER_CALL = 100
METRICS_PER_CALL = 100
INTERACTION_CUSTOMERS_PER_CALL = 10_000
PREFERENCE_CUSTOMERS_PER_CALL = 50_000

# Attribute names are sent joined by ';' and values may come back joined by ','.
ATTRIBUTE_NAMES_SEPARATOR = ";"
ATTRIBUTE_VALUES_DELIMITER = ","

# Margin added to the timeout for how long an unanswered request may hold its limiter slot. requests
# applies the timeout to the connect and to each read separately, hence twice the timeout.
_IN_FLIGHT_MARGIN_SECONDS = 5.0

_RETRYABLE_EXCEPTIONS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)

_T = TypeVar("_T")


def _batches(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _positive(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def _integer(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {type(value).__name__}")
    return int(value)


def _non_empty(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    return value


def _http_url(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ValueError(f"{what} must be an http(s) URL")
    return value


class OptimoveClient:
    """One client's Optimove API. Cheap to build; the shared state (token, limiter) lives in Redis."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        session: requests.Session | None = None,
        redis: redis.Redis | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> None:
        base_url = (credentials.base_url or "").strip()
        if not base_url.startswith(("https://", "http://")):
            raise OptimoveTerminalError("Optimove base URL must start with https:// or http://")
        if not credentials.api_key and not (credentials.username and credentials.password):
            raise OptimoveAuthError(
                "Optimove credentials have neither an API key nor a user name and password"
            )
        self.credentials = credentials
        self.base_url = base_url.rstrip("/")
        self.timeout = float(settings.OPTIMOVE_TIMEOUT_SECONDS if timeout is None else timeout)
        self.max_retries = int(settings.OPTIMOVE_MAX_RETRIES if max_retries is None else max_retries)
        if self.max_retries < 0:
            raise ValueError(f"max_retries cannot be negative, got {self.max_retries}")
        self.backoff_base = float(settings.OPTIMOVE_BACKOFF_BASE_SECONDS)
        self.backoff_max = float(settings.OPTIMOVE_BACKOFF_MAX_SECONDS)
        self.session = session if session is not None else TimeoutSession(timeout=self.timeout)
        self.redis = redis if redis is not None else get_redis()
        limit, window = rate_limit or (
            settings.OPTIMOVE_RATE_LIMIT_REQUESTS,
            settings.OPTIMOVE_RATE_LIMIT_WINDOW_SECONDS,
        )
        in_flight_ttl = 2 * self.timeout + _IN_FLIGHT_MARGIN_SECONDS
        self.limiter = SlidingWindowLimiter(
            self.redis,
            f"optimove:ratelimit:{credentials.rate_limit_key}",
            int(limit),
            float(window),
            in_flight_ttl=in_flight_ttl,
        )
        # Waiting longer than this for a slot means the key is saturated; the caller's task should
        # retry later rather than hold a worker.
        self.limiter_patience = max(60.0, 2 * float(window) + in_flight_ttl)
        self.tokens: SharedLoginToken | None = None
        if not credentials.api_key:
            # The lock outlives the slowest login we would attempt (so a second login cannot start
            # while the first may still succeed), and frees itself if its holder dies. Waiters give
            # up sooner and let their task retry later.
            attempt_budget = self.limiter_patience + in_flight_ttl + self.backoff_max
            self.tokens = SharedLoginToken(
                self.redis,
                key=credentials.rate_limit_key,
                login=self._login,
                lock_timeout=attempt_budget * (self.max_retries + 1),
                wait_timeout=self.limiter_patience + in_flight_ttl,
            )

    @property
    def auth_mode(self) -> str:
        return "API key" if self.credentials.api_key else "legacy login"

    # general ---------------------------------------------------------------------------------------

    def register_event_listener(
        self, *, event_type_id: int, listener_url: str, channel_id: int | None = None
    ) -> None:
        event_type_id = _integer(event_type_id, "event_type_id")
        _http_url(listener_url, "listener_url")
        body: dict[str, Any] = {"EventTypeID": event_type_id, "ListenerURL": listener_url}
        if channel_id is not None:
            if event_type_id == EventType.CONDITIONAL_PROMOTION:
                raise ValueError("event type 5 (conditional promotion) is registered without a channel_id")
            body["ChannelID"] = _integer(channel_id, "channel_id")
        self._call("RegisterEventListener", body=body)

    def unregister_event_listener(self, *, event_type_id: int, channel_id: int | None = None) -> None:
        body: dict[str, Any] = {"EventTypeID": _integer(event_type_id, "event_type_id")}
        if channel_id is not None:
            body["ChannelID"] = _integer(channel_id, "channel_id")
        self._call("UnregisterEventListener", body=body)

    def get_registered_event_listeners(self) -> list[EventListener]:
        data = self._call("GetRegisteredEventListeners")
        return self._parsed("GetRegisteredEventListeners", parsing.parse_event_listeners, data)

    # audience --------------------------------------------------------------------------------------

    def get_customer_send_details_page(
        self,
        *,
        channel_id: int,
        campaign_id: int,
        attributes: Sequence[str] = (),
        top: int | None = None,
        skip: int = 0,
    ) -> SendDetailsPage:
        top = _positive(settings.OPTIMOVE_PAGE_SIZE if top is None else top, "top")
        skip = _integer(skip, "skip")
        if skip < 0:
            raise ValueError(f"skip cannot be negative, got {skip}")
        names = self._attribute_names(attributes)
        params: dict[str, Any] = {
            "ChannelID": _integer(channel_id, "channel_id"),
            "CampaignID": _integer(campaign_id, "campaign_id"),
        }
        if names:
            params["CustomerAttributes"] = ATTRIBUTE_NAMES_SEPARATOR.join(names)
            params["CustomerAttributesDelimiter"] = ATTRIBUTE_VALUES_DELIMITER
        params["$top"] = top
        params["$skip"] = skip
        data = self._call("GetCustomerSendDetailsByChannel", params=params)
        rows = self._parsed(
            "GetCustomerSendDetailsByChannel",
            lambda payload: parsing.parse_send_details(
                payload, attribute_names=names, delimiter=ATTRIBUTE_VALUES_DELIMITER
            ),
            data,
        )
        return SendDetailsPage(skip=skip, top=top, rows=rows)

    def iter_customer_send_details(
        self,
        *,
        channel_id: int,
        campaign_id: int,
        attributes: Sequence[str] = (),
        page_size: int | None = None,
        start_skip: int = 0,
    ) -> Iterator[SendDetailsPage]:
        """Yields non-empty pages until Optimove answers an empty one.

        A short page does not end the walk: Optimove may cap a page below what we asked for. Nothing
        is kept between pages, so memory stays flat however large the campaign.
        """
        top = _positive(settings.OPTIMOVE_PAGE_SIZE if page_size is None else page_size, "page_size")
        skip = start_skip
        while True:
            page = self.get_customer_send_details_page(
                channel_id=channel_id, campaign_id=campaign_id, attributes=attributes, top=top, skip=skip
            )
            if not page.rows:
                return
            skip = page.next_skip
            yield page

    def get_canceled_campaign_customers(self, *, campaign_id: int) -> list[CanceledCustomer]:
        params = {"CampaignID": _integer(campaign_id, "campaign_id")}
        data = self._call("GetCanceledCampaignCustomers", params=params)
        return self._parsed("GetCanceledCampaignCustomers", parsing.parse_canceled_customers, data)

    def get_campaign_details(self, *, campaign_id: int) -> CampaignDetails:
        campaign_id = _integer(campaign_id, "campaign_id")
        data = self._call("GetCampaignDetails", params={"CampaignID": campaign_id})
        return self._parsed(
            "GetCampaignDetails",
            lambda payload: parsing.parse_campaign_details(payload, campaign_id=campaign_id),
            data,
        )

    # templates and apps ----------------------------------------------------------------------------

    def add_channel_templates(self, *, channel_id: int, templates: Sequence[ChannelTemplate]) -> None:
        channel_id = _integer(channel_id, "channel_id")
        seen: set[int] = set()
        body = []
        for index, template in enumerate(templates):
            template_id = _integer(template.template_id, f"templates[{index}].template_id")
            _non_empty(template.template_name, f"templates[{index}].template_name")
            if template_id in seen:
                raise ValueError(f"templates[{index}]: TemplateID {template_id} appears more than once")
            seen.add(template_id)
            body.append({"TemplateID": template_id, "TemplateName": template.template_name})
        for batch in _batches(body, TEMPLATES_PER_CALL):
            self._call("AddChannelTemplates", params={"ChannelID": channel_id}, body=list(batch))

    def get_channel_templates(self, *, channel_id: int) -> list[ChannelTemplate]:
        data = self._call("GetChannelTemplates", params={"ChannelID": _integer(channel_id, "channel_id")})
        return self._parsed("GetChannelTemplates", parsing.parse_channel_templates, data)

    def delete_channel_templates(self, *, channel_id: int, template_ids: Sequence[int]) -> None:
        channel_id = _integer(channel_id, "channel_id")
        body = [
            {"ChannelID": channel_id, "TemplateID": _integer(template_id, f"template_ids[{index}]")}
            for index, template_id in enumerate(template_ids)
        ]
        for batch in _batches(body, TEMPLATES_PER_CALL):
            self._call("DeleteChannelTemplates", body=list(batch))

    def add_channel_apps(self, *, channel_id: int, apps: Sequence[ChannelApp]) -> None:
        channel_id = _integer(channel_id, "channel_id")
        seen: set[str] = set()
        body = []
        for index, app in enumerate(apps):
            _non_empty(app.app_id, f"apps[{index}].app_id")
            _non_empty(app.app_name, f"apps[{index}].app_name")
            if app.app_id in seen:
                raise ValueError(f"apps[{index}]: AppID {app.app_id!r} appears more than once")
            seen.add(app.app_id)
            body.append({"AppID": app.app_id, "AppName": app.app_name})
        for batch in _batches(body, APPS_PER_CALL):
            self._call("AddChannelApps", params={"ChannelID": channel_id}, body=list(batch))

    def delete_channel_apps(self, *, channel_id: int, app_ids: Sequence[str]) -> None:
        channel_id = _integer(channel_id, "channel_id")
        body = [
            {"ChannelID": channel_id, "AppID": _non_empty(app_id, f"app_ids[{index}]")}
            for index, app_id in enumerate(app_ids)
        ]
        for batch in _batches(body, APPS_PER_CALL):
            self._call("DeleteChannelApps", body=list(batch))

    # reporting -------------------------------------------------------------------------------------

    def update_campaign_metrics(self, *, metrics: Sequence[CampaignMetric]) -> None:
        body = []
        for index, metric in enumerate(metrics):
            value = _integer(metric.metric_value, f"metrics[{index}].metric_value")
            if value < 0:
                raise ValueError(f"metrics[{index}].metric_value cannot be negative, got {value}")
            body.append(
                {
                    "ChannelID": _integer(metric.channel_id, f"metrics[{index}].channel_id"),
                    "CampaignID": _integer(metric.campaign_id, f"metrics[{index}].campaign_id"),
                    "TemplateID": _integer(metric.template_id, f"metrics[{index}].template_id"),
                    "MetricID": _integer(metric.metric_id, f"metrics[{index}].metric_id"),
                    "MetricValue": value,
                }
            )
        for batch in _batches(body, METRICS_PER_CALL):
            self._call("UpdateCampaignMetrics", body=list(batch))

    def update_campaign_interactions(self, *, interactions: CampaignInteractions) -> None:
        """Sends the customer ids 10,000 per call; Optimove adds the calls up."""
        day = interactions.interaction_date
        if isinstance(day, datetime):  # a datetime is a date too; take its UTC day
            day = (day if day.tzinfo else day.replace(tzinfo=UTC)).astimezone(UTC).date()
        if not isinstance(day, date):
            raise ValueError("interactions.interaction_date must be a date")
        head: dict[str, Any] = {
            "CampaignID": _integer(interactions.campaign_id, "interactions.campaign_id"),
            "ChannelID": _integer(interactions.channel_id, "interactions.channel_id"),
            "InteractionDate": day.strftime("%Y-%m-%d"),
            "TemplateID": _integer(interactions.template_id, "interactions.template_id"),
            "EventID": _integer(interactions.event_id, "interactions.event_id"),
            "RecipientGroupID": _integer(interactions.recipient_group_id, "interactions.recipient_group_id"),
        }
        customer_ids = self._customer_ids(interactions.customer_ids, "interactions.customer_ids")
        for batch in _batches(customer_ids, INTERACTION_CUSTOMERS_PER_CALL):
            body = {**head, "CustomerIDs": list(batch)}
            if interactions.app_id is not None:
                body["AppID"] = interactions.app_id
            self._call("UpdateCampaignInteractions", body=body)

    # subscriptions and attributes ------------------------------------------------------------------

    def set_customer_channel_preference(
        self,
        *,
        channel_id: int,
        customer_ids: Sequence[str],
        communication_mode: int,
        app_id: str | None = None,
    ) -> None:
        channel_id = _integer(channel_id, "channel_id")
        communication_mode = _integer(communication_mode, "communication_mode")
        ids = self._customer_ids(customer_ids, "customer_ids")
        for batch in _batches(ids, PREFERENCE_CUSTOMERS_PER_CALL):
            body: dict[str, Any] = {
                "ChannelID": channel_id,
                "CustomerIDs": list(batch),
                "CommunicationMode": communication_mode,
            }
            if app_id is not None:
                body["AppID"] = app_id
            self._call("SetCustomerChannelPreference", body=body)

    def add_customer_attribute(
        self, *, name: str, type: str, default_value: str = "", callback_url: str | None = None
    ) -> None:
        body: dict[str, Any] = {
            "Name": _non_empty(name, "name"),
            "Type": _non_empty(type, "type"),
            "DefaultValue": default_value,
        }
        if callback_url is not None:
            body["CallbackURL"] = _http_url(callback_url, "callback_url")
        self._call("AddCustomerAttribute", body=body)

    def update_customer_attributes(
        self,
        *,
        updates: Sequence[CustomerAttributeUpdate],
        callback_url: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        """Sends `batch_size` customers per call (default settings.OPTIMOVE_UPDATE_ATTRIBUTES_BATCH_SIZE);
        Optimove answers each call later on `callback_url`."""
        size = _positive(
            settings.OPTIMOVE_UPDATE_ATTRIBUTES_BATCH_SIZE if batch_size is None else batch_size, "batch_size"
        )
        if callback_url is not None:
            _http_url(callback_url, "callback_url")
        rows = []
        for index, update in enumerate(updates):
            if not update.attributes:
                raise ValueError(f"updates[{index}] has no attributes")
            rows.append(
                {
                    "CustomerID": self._customer_ids([update.customer_id], f"updates[{index}].customer_id")[
                        0
                    ],
                    "Attributes": [
                        {
                            "RealFieldName": _non_empty(
                                attribute.real_field_name, f"updates[{index}].attributes[{position}]"
                            ),
                            "Value": "" if attribute.value is None else str(attribute.value),
                        }
                        for position, attribute in enumerate(update.attributes)
                    ],
                }
            )
        for batch in _batches(rows, size):
            body: dict[str, Any] = {"CustomerNewAttributesValuesList": list(batch)}
            if callback_url is not None:
                body["CallbackURL"] = callback_url
            self._call("UpdateCustomerAttributes", body=body)

    # plumbing --------------------------------------------------------------------------------------

    @staticmethod
    def _attribute_names(attributes: Sequence[str]) -> tuple[str, ...]:
        if isinstance(attributes, str):
            raise ValueError("attributes must be a sequence of names, not one string")
        names = tuple(attributes)
        for name in names:
            _non_empty(name, "each attribute name")
            if ATTRIBUTE_NAMES_SEPARATOR in name or ATTRIBUTE_VALUES_DELIMITER in name:
                raise ValueError(
                    f"attribute name {name!r} contains ';' or ',', which Optimove uses as separators"
                )
        if len(set(names)) != len(names):
            raise ValueError("attribute names must not repeat")
        return names

    @staticmethod
    def _customer_ids(customer_ids: Sequence[str], what: str) -> list[str]:
        if isinstance(customer_ids, str):
            raise ValueError(f"{what} must be a sequence of ids, not one string")
        ids = []
        for index, customer_id in enumerate(customer_ids):
            if isinstance(customer_id, bool) or not isinstance(customer_id, str | int):
                raise ValueError(f"{what}[{index}] must be a string")
            text = str(customer_id).strip()
            if not text:
                raise ValueError(f"{what}[{index}] is empty")
            ids.append(text)
        return ids

    @staticmethod
    def _parsed(function: str, parse: Callable[[Any], _T], data: Any) -> _T:
        try:
            return parse(data)
        except parsing.PayloadError as exc:
            raise OptimoveTerminalError(
                f"Optimove {function}: unreadable answer ({exc})", function=function
            ) from exc

    def _url(self, function: str) -> tuple[str, str]:
        method, path = OPTIMOVE_FUNCTIONS[function]
        return method, f"{self.base_url}/{path.lstrip('/')}"

    def _call(self, function: str, *, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        """One Optimove function. Returns the decoded JSON of a GET (None for a POST)."""
        method, url = self._url(function)
        tokens = self.tokens
        relogged = False
        while True:
            headers = {"Accept": "application/json"}
            token: str | None = None
            if tokens is None:
                headers["X-API-KEY"] = self.credentials.api_key
            else:
                token = self._shared_token(function, tokens.get)
                headers["Authorization-Token"] = token
            response = self._send(function, method, url, params=params, body=body, headers=headers)
            status = response.status_code
            if 200 <= status < 300:
                if tokens is not None and token is not None:
                    self._touch_token(function, tokens, token)
                if method == "POST":
                    # Write functions answer an empty body, {"ResponseCode":200} or more; 2xx is success.
                    return None
                return self._decode(function, response)
            if status == 403 and tokens is not None and token is not None and not relogged:
                # An expired token: replace it (one login shared by all processes) and try once more.
                relogged = True
                self._shared_token(function, partial(tokens.replace, rejected=token))
                continue
            if status in (401, 403):
                raise OptimoveAuthError(
                    f"Optimove {function} rejected the credentials ({status})",
                    status=status,
                    function=function,
                )
            raise OptimoveTerminalError(
                f"Optimove {function} answered {status}", status=status, function=function
            )

    @staticmethod
    def _shared_token(function: str, operation: Callable[[], _T]) -> _T:
        """Runs a token-store operation before a request; Redis trouble there is retryable."""
        try:
            return operation()
        except redis.exceptions.RedisError as exc:
            raise OptimoveRetryableError(
                f"Optimove {function}: Redis is unavailable for the shared login token", function=function
            ) from exc

    @staticmethod
    def _touch_token(function: str, tokens: SharedLoginToken, token: str) -> None:
        # The call succeeded: a Redis hiccup here must not turn it into a failure (and a repeat).
        try:
            tokens.touch(token)
        except redis.exceptions.RedisError:
            logger.warning("optimove %s: could not slide the login token's TTL (Redis unavailable)", function)

    def _login(self) -> str:
        """Called by SharedLoginToken under its lock; never called while another login is valid."""
        method, url = self._url("login")
        body = {"UserName": self.credentials.username, "Password": self.credentials.password}
        response = self._send(
            "login", method, url, params=None, body=body, headers={"Accept": "application/json"}
        )
        status = response.status_code
        if status in (401, 403):
            raise OptimoveAuthError(
                f"Optimove login rejected the credentials ({status})", status=status, function="login"
            )
        if not 200 <= status < 300:
            raise OptimoveTerminalError(f"Optimove login answered {status}", status=status, function="login")
        try:
            return parsing.parse_login_token(response.content)
        except parsing.PayloadError as exc:
            raise OptimoveTerminalError(
                "Optimove login: the answer is not a token", status=status, function="login"
            ) from exc

    @staticmethod
    def _decode(function: str, response: requests.Response) -> Any:
        if not response.content.strip():
            raise OptimoveTerminalError(
                f"Optimove {function} answered {response.status_code} with an empty body",
                status=response.status_code,
                function=function,
            )
        try:
            return response.json()
        except ValueError:
            raise OptimoveTerminalError(
                f"Optimove {function} answered {response.status_code} with a body that is not JSON",
                status=response.status_code,
                function=function,
            ) from None

    def _release(self, function: str, slot: str) -> None:
        # The answer is already here: losing it over a Redis hiccup could repeat a write. An unreleased
        # slot is merely held until its in-flight TTL runs out, which errs on the safe side.
        try:
            self.limiter.release(slot)
        except redis.exceptions.RedisError:
            logger.warning("optimove %s: could not release a rate-limit slot (Redis unavailable)", function)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform(0, min(max, base * 2**attempt))."""
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))

    def _send(
        self,
        function: str,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None,
        body: Any,
        headers: dict[str, str],
    ) -> requests.Response:
        """Sends with retries of what can heal; returns the first answer that is not 429 or 5xx."""
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        attempt = 0
        while True:
            try:
                slot = self.limiter.acquire(timeout=self.limiter_patience)
            except RateLimitWaitTimeout:
                raise OptimoveRateLimited(
                    f"Optimove {function}: no rate-limit slot came free within {self.limiter_patience:.0f}s",
                    function=function,
                ) from None
            except redis.exceptions.RedisError as exc:
                # Without the shared limiter we cannot know we are under Optimove's limit: wait for Redis.
                raise OptimoveRetryableError(
                    f"Optimove {function}: Redis is unavailable for the shared rate limit", function=function
                ) from exc
            started = time.monotonic()
            outcome: str
            response: requests.Response | None = None
            failure: Exception | None = None
            try:
                response = self.session.request(
                    method, url, params=params, json=body, headers=headers, timeout=self.timeout
                )
                outcome = str(response.status_code)
            except _RETRYABLE_EXCEPTIONS as exc:
                failure = exc
                outcome = "timeout" if isinstance(exc, requests.exceptions.Timeout) else "connection error"
            except requests.exceptions.RequestException as exc:
                # Not something a retry heals (a malformed URL, too many redirects...).
                raise OptimoveTerminalError(
                    f"Optimove {function}: request failed ({type(exc).__name__})", function=function
                ) from exc
            finally:
                self._release(function, slot)
                duration_ms = int((time.monotonic() - started) * 1000)
            logger.info(
                "optimove %s %s in %d ms (attempt %d)",
                function,
                outcome,
                duration_ms,
                attempt + 1,
                extra={
                    "optimove_function": function,
                    "http_status": response.status_code if response is not None else None,
                    "outcome": outcome,
                    "duration_ms": duration_ms,
                    "attempt": attempt + 1,
                },
            )
            optimove_request_observe(function=function, outcome=outcome, duration_ms=duration_ms)
            retryable = response is None or response.status_code == 429 or response.status_code >= 500
            if not retryable and response is not None:
                return response
            if attempt >= self.max_retries:
                calls = attempt + 1
                if response is None:
                    raise OptimoveRetryableError(
                        f"Optimove {function}: could not reach Optimove ({outcome}) after {calls} attempts",
                        function=function,
                    ) from failure
                status = response.status_code
                error_class = OptimoveRateLimited if status == 429 else OptimoveRetryableError
                raise error_class(
                    f"Optimove {function} answered {status} after {calls} attempts",
                    status=status,
                    function=function,
                )
            time.sleep(self._backoff(attempt))
            attempt += 1


def optimove_client_for(
    client: Client, *, timeout: float | None = None, max_retries: int | None = None
) -> OptimoveClient:
    """The API client for one `apps.clients.models.Client` (settings' timeout and retries by default)."""
    credentials = Credentials(
        base_url=client.optimove_base_url,
        api_key=client.optimove_api_key,
        username=client.optimove_username,
        password=client.optimove_password,
    )
    return OptimoveClient(credentials, timeout=timeout, max_retries=max_retries)
