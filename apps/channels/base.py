"""The one small interface every provider backend implements, and the values that cross it.

Campaigns hands a backend a batch of rendered messages and gets back exactly one `SendResult` per
message, in order. A backend never raises for a provider or message problem: it decides, per message,
whether the failure can heal (RETRY) or will fail the same way again (FAILED), and says why in words an
admin can read, without secrets and without the recipient's address.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, ClassVar, Self

from django.utils import timezone

from apps.core.errors import TerminalError
from apps.core.logging import redact
from apps.message_templates.types import RenderedMessage

logger = logging.getLogger(__name__)

MAX_REASON_LENGTH = 300


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    message_id: int  # our Message row id
    idempotency_key: str  # stable across re-sends after a crash
    to: str  # address: email, phone, device token, URL
    content: RenderedMessage
    customer_id: str
    metadata: Mapping[str, str]  # e.g. campaign_id, template_id, channel_id (non-personal)
    # Email: the one-click unsubscribe URL for the List-Unsubscribe headers (RFC 8058); "" for none.
    list_unsubscribe_url: str = ""


class SendStatus(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SendResult:
    message_id: int
    status: SendStatus
    provider_message_id: str = ""
    error: str = ""  # readable reason for the admin; no secrets, no email/phone
    retry_after: float | None = None


class ChannelConfigError(TerminalError, ValueError):
    """A channel's provider settings cannot work (unknown provider, missing secret, wrong kind).

    Raised when a backend is built, never from `send_batch`. The message names settings, never values.
    """


class UnknownBackendError(ChannelConfigError):
    """No backend is registered under the provider name."""


def sent(message: OutboundMessage, provider_message_id: str) -> SendResult:
    return SendResult(message.message_id, SendStatus.SENT, provider_message_id=provider_message_id)


def retry(message: OutboundMessage, reason: str, *, retry_after: float | None = None) -> SendResult:
    return SendResult(
        message.message_id, SendStatus.RETRY, error=safe_reason(reason, message.to), retry_after=retry_after
    )


def failed(message: OutboundMessage, reason: str) -> SendResult:
    return SendResult(message.message_id, SendStatus.FAILED, error=safe_reason(reason, message.to))


_WHITESPACE = re.compile(r"\s+")


def safe_reason(text: str, address: str = "") -> str:
    """A provider's words made fit for the admin: the recipient's address removed (providers like to
    echo it back), emails, phones and secret-looking values redacted, one line, bounded length."""
    if len(address) >= 3:
        text = text.replace(address, "[address]")
    text = _WHITESPACE.sub(" ", redact(text)).strip()
    if len(text) > MAX_REASON_LENGTH:
        text = text[: MAX_REASON_LENGTH - 1] + "…"
    return text


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header, given as seconds or as an HTTP date; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - timezone.now()).total_seconds()
    return max(seconds, 0.0)


def http_status_is_retryable(status: int) -> bool:
    """429 and 5xx can heal; 408 (the receiver timed out waiting for us) too. Other 4xx will not."""
    return status in (408, 429) or status >= 500


class ChannelBackend(ABC):
    """One provider. Built per send batch (`backend_for`), used as a context manager so connections
    opened in `open()` are reused for the whole batch and closed afterwards."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]

    def __init__(
        self,
        *,
        options: Mapping[str, Any],
        secrets: Mapping[str, Any],
        timeout: float = 10.0,
        kind: str = "",
    ) -> None:
        errors = self.config_errors(options=options, secrets=secrets)
        if not timeout or timeout <= 0:
            errors.append(f"timeout must be a positive number of seconds, got {timeout!r}")
        if errors:
            raise ChannelConfigError(f"provider {self.name}: " + "; ".join(errors))
        self.options: Mapping[str, Any] = dict(options)
        self.secrets: Mapping[str, Any] = dict(secrets)
        self.timeout = float(timeout)
        self.kind = kind

    def __repr__(self) -> str:  # never the secrets
        return f"<{type(self).__name__} {self.name}>"

    @classmethod
    def config_errors(cls, *, options: Mapping[str, Any], secrets: Mapping[str, Any]) -> list[str]:
        """What is missing or malformed, one readable sentence each; empty when the settings can work."""
        return []

    @classmethod
    def variant(cls, suffix: str) -> type[ChannelBackend]:
        """The class for `<name>:<suffix>` providers (e.g. `anymail:postmark`); most backends have none."""
        raise UnknownBackendError(f"provider {cls.name!r} takes no ':{suffix}' variant")

    def open(self) -> None:  # noqa: B027 - an optional hook; most backends hold no connection
        """Opens connections to reuse across the batch. Must not raise for a provider problem."""

    def close(self) -> None:  # noqa: B027 - an optional hook, paired with open
        """Closes what `open` opened. Must not raise."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @abstractmethod
    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """Exactly one result per message, in order. Never raises for a provider or message problem."""


def unexpected(message: OutboundMessage, exc: Exception, provider: str) -> SendResult:
    """An error no mapping foresaw: logged with its traceback (the log is redacted) and retried, since
    nothing says it will fail again; the finite retry count upstream turns a persistent one into FAILED."""
    logger.exception("unexpected error from %s for message %s", provider, message.message_id)
    return retry(message, f"unexpected {type(exc).__name__} from {provider}")


def string_option(options: Mapping[str, Any], key: str) -> str:
    value = options.get(key)
    return value.strip() if isinstance(value, str) else ""


def whole_number_option_errors(options: Mapping[str, Any], key: str, *, low: int, high: int) -> list[str]:
    """The error for an optional whole-number option outside low..high (booleans are not numbers)."""
    value = options.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
        return []
    return [f"option {key} must be a whole number from {low} to {high}"]


def is_http_url(value: object) -> bool:
    return isinstance(value, str) and re.match(r"^https?://[^\s/?#]+", value, re.IGNORECASE) is not None
