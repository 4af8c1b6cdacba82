"""Signed JSON webhooks: one POST per message to the customer's URL or the channel's.

The request: a JSON body `{"id", "customer_id", "to", "metadata", "content"}` with headers
`Idempotency-Key` (the same as `id`, and the same again when a message is re-sent after a crash),
`X-Partner-Timestamp` (Unix seconds) and `X-Partner-Signature`
(`v1=<hex HMAC-SHA256(signing_secret, "{timestamp}.{body}")>`, see apps.channels.signatures).

Delivery receipts: the receiver may report what became of a message by POSTing JSON to
`{PUBLIC_BASE_URL}/delivery/<client slug>/<Optimove channel id>/webhook/`, signed exactly like our
requests (the same two headers, the same secret, over its own body and timestamp):

    {"id": "<the Idempotency-Key we sent>", "event": "delivered", "occurred_at": "2026-03-02T10:00:05Z"}

`event` is one of delivered, opened, clicked, bounced, complained, unsubscribed, undelivered;
`occurred_at` is an ISO 8601 time with its zone. Optional: `url` (the link, for clicked) and
`event_id` (the receiver's own id for the event: two receipts with the same one are the same event;
without it, the same id, event and time are). A list of up to 500 such objects may be sent at once;
all are checked before any is stored. Answers: 200 `{"status": "accepted", "stored", "duplicates",
"ignored"}` (a repeat is a 200 too), 400 naming what is wrong with the body, 401 without the headers,
403 for a wrong signature or a timestamp more than 5 minutes off, 404 for an unknown client or channel.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from apps.channels.base import (
    ChannelBackend,
    OutboundMessage,
    SendResult,
    failed,
    http_status_is_retryable,
    is_http_url,
    parse_retry_after,
    retry,
    safe_reason,
    sent,
    string_option,
    unexpected,
    whole_number_option_errors,
)
from apps.channels.registry import register_backend
from apps.channels.signatures import webhook_signature
from apps.core.http import TimeoutSession, shared_session
from apps.core.threads import io_map

RESERVED_HEADERS = frozenset(
    {"idempotency-key", "x-partner-timestamp", "x-partner-signature", "content-type", "content-length"}
)
BODY_SNIPPET_LENGTH = 200
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 64


@register_backend
class WebhookBackend(ChannelBackend):
    name = "webhook"
    kinds = frozenset({"webhook"})

    def __init__(
        self,
        *,
        options: Mapping[str, Any],
        secrets: Mapping[str, Any],
        timeout: float = 10.0,
        kind: str = "",
    ) -> None:
        super().__init__(options=options, secrets=secrets, timeout=timeout, kind=kind)
        self._secret: str = self.secrets["signing_secret"]
        self._url = string_option(self.options, "url")
        self._extra_headers = {str(k): str(v) for k, v in (self.options.get("headers") or {}).items()}
        self._session: TimeoutSession | None = None
        # Requests in flight at once within a batch: a receiver's latency overlaps instead of adding up.
        self._concurrency = int(self.options.get("concurrency") or DEFAULT_CONCURRENCY)

    @classmethod
    def config_errors(cls, *, options: Mapping[str, Any], secrets: Mapping[str, Any]) -> list[str]:
        errors = []
        secret = secrets.get("signing_secret")
        if not isinstance(secret, str) or not secret:
            errors.append("secret signing_secret is required")
        errors += whole_number_option_errors(options, "concurrency", low=1, high=MAX_CONCURRENCY)
        url = options.get("url")
        if url is not None and not is_http_url(url):
            errors.append("option url must be an http(s) URL")
        headers = options.get("headers")
        if headers is not None:
            if not isinstance(headers, Mapping):
                errors.append("option headers must be an object of header names to values")
            else:
                clash = sorted(h for h in headers if str(h).lower() in RESERVED_HEADERS)
                if clash:
                    errors.append(f"option headers may not set {', '.join(clash)}")
        return errors

    def open(self) -> None:
        # The process's shared session: keep-alive connections are reused across batches too.
        if self._session is None:
            self._session = shared_session(timeout=self.timeout, pool_maxsize=self._concurrency)

    def close(self) -> None:
        self._session = None  # shared: its connections stay open for the next batch

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        self.open()
        # One result per message, in order; _send_one never raises.
        return io_map(self._send_one, messages, width=self._concurrency)

    def body_for(self, message: OutboundMessage) -> bytes:
        content = message.content
        body = {
            "id": message.idempotency_key,
            "customer_id": message.customer_id,
            "to": message.to,
            "metadata": dict(message.metadata),
            "content": content.payload if content.payload is not None else {"text": content.text},
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    def _send_one(self, message: OutboundMessage) -> SendResult:
        url = message.to if is_http_url(message.to) else self._url
        if not url:
            return failed(
                message, "no webhook URL: the address is not an http(s) URL and option url is empty"
            )
        try:
            body = self.body_for(message)
        except (TypeError, ValueError) as exc:
            return failed(message, f"payload is not JSON: {exc}")
        timestamp = int(time.time())
        headers = {
            **self._extra_headers,
            "Content-Type": "application/json",
            "Idempotency-Key": message.idempotency_key,
            "X-Partner-Timestamp": str(timestamp),
            "X-Partner-Signature": webhook_signature(self._secret, timestamp, body),
        }
        assert self._session is not None
        try:
            # Redirects are not followed: a POST turned into a GET elsewhere is not a delivery.
            response = self._session.post_unredirected(url, data=body, headers=headers, timeout=self.timeout)
        except requests.Timeout:
            return retry(message, f"webhook timed out after {self.timeout:g}s")
        except requests.ConnectionError:
            return retry(message, "webhook connection failed")
        except requests.RequestException as exc:
            return failed(message, f"webhook request invalid: {type(exc).__name__}")
        except Exception as exc:
            return unexpected(message, exc, self.name)
        with response:
            status = response.status_code
            if 200 <= status < 300:
                return sent(message, self._provider_id(response) or message.idempotency_key)
            snippet = safe_reason(response.text[:BODY_SNIPPET_LENGTH], message.to)
            reason = f"webhook answered HTTP {status}" + (f": {snippet}" if snippet else "")
            if http_status_is_retryable(status):
                return retry(
                    message, reason, retry_after=parse_retry_after(response.headers.get("Retry-After"))
                )
            return failed(message, reason)

    @staticmethod
    def _provider_id(response: requests.Response) -> str:
        try:
            answer = response.json()
        except ValueError:
            return ""
        value = answer.get("id") if isinstance(answer, dict) else None
        if isinstance(value, bool) or not isinstance(value, str | int):
            return ""
        return str(value)[:200]
