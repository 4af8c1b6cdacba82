"""Email through Django's email backends: plain SMTP, or any ESP django-anymail supports.

A batch is sent over a few connections (SMTP sessions, or anymail HTTP sessions) side by side, each
reused for its share of the batch: an SMTP message costs four round trips, so one session alone spends
most of its time waiting for the server. A small batch uses one connection; option `connections` caps
how many a batch opens (default 4). Each message carries a stable `Message-ID` built from its
idempotency key, so a message re-sent after a crash is recognisably the same one. A message given a
one-click unsubscribe URL (every campaign email is) carries the List-Unsubscribe and
List-Unsubscribe-Post headers of RFC 8058; option `headers` may not set them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import pkgutil
import re
import smtplib
from collections.abc import Mapping, Sequence
from email.utils import parseaddr
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.validators import validate_email

from apps.channels.base import (
    ChannelBackend,
    OutboundMessage,
    SendResult,
    UnknownBackendError,
    failed,
    http_status_is_retryable,
    parse_retry_after,
    retry,
    safe_reason,
    sent,
    string_option,
    unexpected,
    whole_number_option_errors,
)
from apps.channels.registry import register_backend
from apps.core.threads import io_map

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
_MESSAGE_ID_SAFE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,48}$")
RESERVED_HEADERS = frozenset(
    {
        "message-id",
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "reply-to",
        "list-unsubscribe",
        "list-unsubscribe-post",
    }
)
DEFAULT_CONNECTIONS = 4
MAX_CONNECTIONS = 16
# A batch opens one more connection for every this many messages, up to option `connections`: opening
# one (TLS, login) costs about as much as sending a few messages.
MESSAGES_PER_CONNECTION = 10


class _ConnectionLost(Exception):
    """The SMTP session is gone; the message was not (known to be) sent."""


class _Lane:
    """One connection and the share of a batch sent over it, by one thread."""

    __slots__ = ("connection",)

    def __init__(self) -> None:
        self.connection: BaseEmailBackend | None = None


class _EmailBackend(ChannelBackend):
    """The send loop shared by SMTP and anymail; subclasses say how to connect and how errors map."""

    kinds = frozenset({"email"})

    def __init__(
        self,
        *,
        options: Mapping[str, Any],
        secrets: Mapping[str, Any],
        timeout: float = 10.0,
        kind: str = "",
    ) -> None:
        super().__init__(options=options, secrets=secrets, timeout=timeout, kind=kind)
        self.from_email = string_option(self.options, "from_email")
        reply_to = self.options.get("reply_to") or []
        self.reply_to: list[str] = [reply_to] if isinstance(reply_to, str) else list(reply_to)
        self.extra_headers = {str(k): str(v) for k, v in (self.options.get("headers") or {}).items()}
        self.message_id_domain = string_option(self.options, "message_id_domain") or _domain_of(
            self.from_email
        )
        self.connections = int(self.options.get("connections") or DEFAULT_CONNECTIONS)
        self._lanes: list[_Lane] = [_Lane()]

    @classmethod
    def config_errors(cls, *, options: Mapping[str, Any], secrets: Mapping[str, Any]) -> list[str]:
        errors = []
        from_email = options.get("from_email")
        if not isinstance(from_email, str) or not _domain_of(from_email):
            errors.append("option from_email is required, e.g. 'Shop <news@shop.example>'")
        reply_to = options.get("reply_to")
        if reply_to is not None and not (
            isinstance(reply_to, str)
            or (isinstance(reply_to, list) and all(isinstance(r, str) for r in reply_to))
        ):
            errors.append("option reply_to must be an address or a list of addresses")
        headers = options.get("headers")
        if headers is not None:
            if not isinstance(headers, Mapping):
                errors.append("option headers must be an object of header names to values")
            else:
                clash = sorted(h for h in headers if str(h).lower() in RESERVED_HEADERS)
                if clash:
                    errors.append(f"option headers may not set {', '.join(clash)}")
        domain = options.get("message_id_domain")
        if domain is not None and (not isinstance(domain, str) or not re.match(r"^[A-Za-z0-9.-]+$", domain)):
            errors.append("option message_id_domain must be a domain name")
        errors += whole_number_option_errors(options, "connections", low=1, high=MAX_CONNECTIONS)
        return errors

    # Connecting ---------------------------------------------------------------------------------

    def _new_connection(self) -> BaseEmailBackend:
        raise NotImplementedError

    def open(self) -> None:
        """Connects the first connection now; a failure here is reported per message by `send_batch`,
        never raised. Further connections open when a batch is big enough to use them."""
        self._connect(self._lanes[0])

    def _connect(self, lane: _Lane) -> Exception | None:
        try:
            if lane.connection is None:
                lane.connection = self._new_connection()
            lane.connection.open()
        except Exception as exc:
            self._drop_connection(lane)
            return exc
        return None

    @staticmethod
    def _drop_connection(lane: _Lane) -> None:
        if lane.connection is not None:
            # Closing a broken session may fail again; it is gone either way.
            with contextlib.suppress(Exception):
                lane.connection.close()
            lane.connection = None

    def close(self) -> None:
        for lane in self._lanes:
            self._drop_connection(lane)

    # Sending ------------------------------------------------------------------------------------

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """One result per message, in order. The batch is dealt round-robin over its connections, so
        messages due first still go first on every connection."""
        width = max(1, min(self.connections, len(messages) // MESSAGES_PER_CONNECTION))
        while len(self._lanes) < width:
            self._lanes.append(_Lane())
        if width == 1:
            return self._send_over(self._lanes[0], messages)
        shares = [messages[i::width] for i in range(width)]
        lanes = self._lanes[:width]
        parts = io_map(lambda i: self._send_over(lanes[i], shares[i]), range(width), width=width)
        results: list[SendResult] = [None] * len(messages)  # type: ignore[list-item]
        for i, part in enumerate(parts):
            results[i::width] = part
        return results

    def _send_over(self, lane: _Lane, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        connect_error: Exception | None = None
        for message in messages:
            if lane.connection is None and connect_error is None:
                # First use, or the connection was lost mid-batch: (re)connect. Once that fails, the
                # rest of this share gets the same answer instead of waiting for the same timeout.
                connect_error = self._connect(lane)
            if connect_error is not None:
                results.append(self._map_error(lane, message, connect_error))
                continue
            result = self._send_one(lane, message)
            results.append(result or retry(message, "mail server closed the connection"))
        return results

    def message_id(self, message: OutboundMessage) -> str:
        key = message.idempotency_key
        if not _MESSAGE_ID_SAFE.match(key):
            # Keys with characters a Message-ID cannot hold are hashed: still stable across re-sends.
            # 32 hex digits keep the header short enough not to be folded.
            key = hashlib.sha256(key.encode()).hexdigest()[:32]
        return f"<{key}@{self.message_id_domain}>"

    def build_email(self, message: OutboundMessage) -> EmailMultiAlternatives:
        content = message.content
        headers = {**self.extra_headers, "Message-ID": self.message_id(message)}
        if message.list_unsubscribe_url:
            # RFC 8058 one-click: mailbox providers show an unsubscribe button that POSTs
            # "List-Unsubscribe=One-Click" to the URL (Gmail and Yahoo require it of bulk senders).
            headers["List-Unsubscribe"] = f"<{message.list_unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email = EmailMultiAlternatives(
            subject=content.subject,
            body=content.text,
            from_email=self.from_email,
            to=[message.to],
            reply_to=self.reply_to or None,
            headers=headers,
        )
        if content.html:
            email.attach_alternative(content.html, "text/html")
        return email

    def _send_one(self, lane: _Lane, message: OutboundMessage) -> SendResult | None:
        """The result, or None when the connection was lost (the caller reconnects)."""
        try:
            validate_email(message.to)
        except ValidationError:
            return failed(message, "invalid email address")
        if not (message.content.text or message.content.html):
            return failed(message, "the rendered email has neither text nor html")
        try:
            email = self.build_email(message)
        except (ValueError, TypeError) as exc:
            return failed(message, f"cannot build the email: {exc}")
        assert lane.connection is not None
        try:
            count = lane.connection.send_messages([email])
        except _ConnectionLost:
            return None
        except Exception as exc:
            try:
                return self._map_error(lane, message, exc)
            except _ConnectionLost:
                return None
        if not count:
            return failed(message, "the email backend accepted nothing (no recipients)")
        return self._after_send(message, email)

    def _after_send(self, message: OutboundMessage, email: EmailMultiAlternatives) -> SendResult:
        return sent(message, self.message_id(message))

    def _map_error(self, lane: _Lane, message: OutboundMessage, exc: Exception) -> SendResult:
        raise NotImplementedError


def _domain_of(address: str) -> str:
    _, addr = parseaddr(address or "")
    _, at, domain = addr.rpartition("@")
    return domain.strip() if at and domain.strip() and "." in domain else ""


def _smtp_code_result(message: OutboundMessage, code: int, text: str, what: str) -> SendResult:
    # "(550): 5.1.1 ..." rather than "550 5.1.1 ...": the latter reads like a phone number to the
    # redaction that every reason goes through.
    reason = f"{what} ({code}): {text}".strip()
    if 400 <= code < 500:
        return retry(message, reason)
    return failed(message, reason)


def _caused_by_timeout(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _smtp_text(raw: bytes | str) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


@register_backend
class SmtpBackend(_EmailBackend):
    """Plain SMTP. Options: host, port, use_tls, use_ssl, username, from_email, reply_to, headers,
    message_id_domain, connections. Secrets: password."""

    name = "smtp"

    @classmethod
    def config_errors(cls, *, options: Mapping[str, Any], secrets: Mapping[str, Any]) -> list[str]:
        errors = super().config_errors(options=options, secrets=secrets)
        host = options.get("host")
        if not isinstance(host, str) or not host.strip():
            errors.append("option host is required")
        port = options.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            errors.append("option port must be a port number")
        for flag in ("use_tls", "use_ssl"):
            if options.get(flag) is not None and not isinstance(options.get(flag), bool):
                errors.append(f"option {flag} must be true or false")
        if options.get("use_tls") and options.get("use_ssl"):
            errors.append("options use_tls and use_ssl cannot both be true")
        if options.get("username") and not secrets.get("password"):
            errors.append("secret password is required when option username is set")
        return errors

    def _new_connection(self) -> BaseEmailBackend:
        return get_connection(
            SMTP_BACKEND,
            fail_silently=False,
            host=string_option(self.options, "host"),
            port=int(self.options.get("port") or 25),
            username=string_option(self.options, "username"),
            password=str(self.secrets.get("password") or ""),
            use_tls=bool(self.options.get("use_tls")),
            use_ssl=bool(self.options.get("use_ssl")),
            timeout=self.timeout,
        )

    def _map_error(self, lane: _Lane, message: OutboundMessage, exc: Exception) -> SendResult:
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code, text = next(iter(exc.recipients.values()), (550, b"refused"))
            return _smtp_code_result(message, int(code), _smtp_text(text), "recipient refused")
        if isinstance(exc, smtplib.SMTPSenderRefused):
            return _smtp_code_result(message, exc.smtp_code, _smtp_text(exc.smtp_error), "sender refused")
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return _smtp_code_result(message, exc.smtp_code, _smtp_text(exc.smtp_error), "login failed")
        if isinstance(exc, smtplib.SMTPServerDisconnected) and _caused_by_timeout(exc):
            # smtplib reports a read timeout as a disconnection.
            self._drop_connection(lane)
            return retry(message, f"mail server timed out after {self.timeout:g}s")
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            if lane.connection is not None and getattr(lane.connection, "connection", None) is not None:
                # Lost mid-batch: the caller reconnects once and carries on with the rest.
                self._drop_connection(lane)
                raise _ConnectionLost from exc
            return retry(message, "mail server closed the connection")
        if isinstance(exc, smtplib.SMTPResponseException):  # SMTPDataError, SMTPHeloError, SMTPConnectError
            return _smtp_code_result(
                message, exc.smtp_code, _smtp_text(exc.smtp_error), "mail server refused"
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return failed(message, f"mail server does not support a required feature: {exc}")
        if isinstance(exc, TimeoutError):
            return retry(message, f"mail server timed out after {self.timeout:g}s")
        if isinstance(exc, smtplib.SMTPException | OSError):
            # Connection refused, reset, DNS failure...: the connection is unusable, reconnect later.
            self._drop_connection(lane)
            return retry(message, f"mail server unreachable: {type(exc).__name__}")
        if isinstance(exc, ValueError | UnicodeError):
            return failed(message, f"cannot send this email: {exc}")
        return unexpected(message, exc, self.name)


# anymail ----------------------------------------------------------------------------------------


@functools.cache
def anymail_esps() -> tuple[str, ...]:
    import anymail.backends

    return tuple(
        sorted(
            m.name
            for m in pkgutil.iter_modules(anymail.backends.__path__)
            if not m.name.startswith(("base", "_")) and m.name not in {"test", "console"}
        )
    )


_REFUSED_STATUSES = frozenset({"rejected", "invalid", "failed"})


@register_backend
class AnymailBackend(_EmailBackend):
    """Any ESP django-anymail supports, as provider `anymail:<esp>`. Secrets (api_key, server_token...)
    and option `esp_settings` are passed to the anymail backend as keyword arguments, so anymail's own
    setting names apply (e.g. anymail:postmark takes secret server_token)."""

    name = "anymail"
    variant_label: ClassVar[str] = "esp"
    esp: ClassVar[str] = ""

    @classmethod
    def variant(cls, suffix: str) -> type[ChannelBackend]:
        return _anymail_class(suffix)

    @classmethod
    def backend_path(cls) -> str:
        return f"anymail.backends.{cls.esp}.EmailBackend"

    @classmethod
    def config_errors(cls, *, options: Mapping[str, Any], secrets: Mapping[str, Any]) -> list[str]:
        errors = super().config_errors(options=options, secrets=secrets)
        if not cls.esp:
            return [*errors, "the provider must name an ESP, e.g. anymail:postmark"]
        esp_settings = options.get("esp_settings")
        if esp_settings is not None and not isinstance(esp_settings, Mapping):
            return [*errors, "option esp_settings must be an object"]
        try:
            # Building the backend makes anymail check its required settings; it sends nothing.
            get_connection(cls.backend_path(), fail_silently=False, **_anymail_kwargs(options, secrets, 10.0))
        except ImportError as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            errors.append(f"anymail:{cls.esp} cannot be used here: {first_line}")
        except (ImproperlyConfigured, TypeError, ValueError) as exc:
            errors.append(_anymail_setting_error(cls.esp, str(exc)))
        return errors

    def _new_connection(self) -> BaseEmailBackend:
        return get_connection(
            self.backend_path(),
            fail_silently=False,
            **_anymail_kwargs(self.options, self.secrets, self.timeout),
        )

    def build_email(self, message: OutboundMessage) -> EmailMultiAlternatives:
        email = super().build_email(message)
        # Carried back by the ESP's tracking webhooks, so delivery events find their Message.
        email.metadata = {**message.metadata, "message_id": str(message.message_id)}  # type: ignore[attr-defined]
        return email

    def _after_send(self, message: OutboundMessage, email: EmailMultiAlternatives) -> SendResult:
        status = getattr(email, "anymail_status", None)
        recipient = status.recipients.get(message.to) if status is not None else None
        if recipient is not None and recipient.status in _REFUSED_STATUSES:
            return failed(message, f"the ESP {recipient.status} the recipient")
        provider_id = getattr(status, "message_id", None)
        if isinstance(provider_id, set):  # one id per recipient; there is one recipient
            provider_id = next(iter(sorted(provider_id)), None)
        return sent(message, str(provider_id) if provider_id else self.message_id(message))

    def _map_error(self, lane: _Lane, message: OutboundMessage, exc: Exception) -> SendResult:
        from anymail.exceptions import (
            AnymailAPIError,
            AnymailError,
            AnymailInvalidAddress,
            AnymailRecipientsRefused,
        )

        if isinstance(exc, AnymailRecipientsRefused):
            return failed(message, f"the ESP refused the recipient (anymail:{self.esp})")
        if isinstance(exc, AnymailInvalidAddress):
            return failed(message, "invalid email address")
        if isinstance(exc, AnymailAPIError):
            code = exc.status_code
            response = getattr(exc, "response", None)
            if code is None:
                return retry(message, f"could not reach the ESP (anymail:{self.esp})")
            detail = safe_reason(response.text[:200], message.to) if response is not None else ""
            reason = f"the ESP answered HTTP {code}" + (f": {detail}" if detail else "")
            if http_status_is_retryable(code):
                headers = getattr(response, "headers", None) or {}
                return retry(message, reason, retry_after=parse_retry_after(headers.get("Retry-After")))
            return failed(message, reason)
        if isinstance(exc, AnymailError | ImproperlyConfigured):
            # Unsupported features, serialization and configuration errors fail the same way again.
            first_line = str(exc.args[0]) if exc.args else ""
            return failed(message, f"{type(exc).__name__}: {first_line}")
        return unexpected(message, exc, f"anymail:{self.esp}")


def _anymail_setting_error(esp: str, text: str) -> str:
    # anymail words it for Django settings ("You must set ANYMAIL = {'POSTMARK_SERVER_TOKEN': ...}");
    # here the same setting is a secret or an esp_settings option named in lower case.
    missing = re.search(r"\{'([A-Z0-9_]+)': \.\.\.\}", text)
    if missing:
        setting = missing.group(1).lower().removeprefix(f"{esp}_")
        return f"anymail:{esp} needs {setting}: give it as a secret (or in option esp_settings)"
    return f"anymail:{esp} settings: {safe_reason(text)}"


def _anymail_kwargs(options: Mapping[str, Any], secrets: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    return {"requests_timeout": timeout, **(options.get("esp_settings") or {}), **secrets}


@functools.cache
def _anymail_class(esp: str) -> type[AnymailBackend]:
    if not re.match(r"^[a-z0-9_]+$", esp) or importlib.util.find_spec(f"anymail.backends.{esp}") is None:
        raise UnknownBackendError(f"unknown anymail ESP {esp!r}; known: {', '.join(anymail_esps())}")
    return type(f"Anymail_{esp}_Backend", (AnymailBackend,), {"name": f"anymail:{esp}", "esp": esp})
