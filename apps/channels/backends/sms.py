"""SMS through Twilio (or a Twilio-compatible gateway at option base_url)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client as TwilioClient

from apps.channels.base import (
    ChannelBackend,
    OutboundMessage,
    SendResult,
    failed,
    http_status_is_retryable,
    is_http_url,
    retry,
    sent,
    string_option,
    unexpected,
)
from apps.channels.registry import register_backend

# twilio-python logs every request and response at INFO; one line per SMS is noise, and the request
# lines carry the account's URL. Warnings and errors still come through.
_twilio_http_logger = logging.getLogger("apps.channels.twilio_http")
_twilio_http_logger.setLevel(logging.WARNING)


@register_backend
class TwilioBackend(ChannelBackend):
    """Secrets: account_sid, auth_token. Options: from_ (a number or sender id) or messaging_service_sid,
    status_callback, base_url (a Twilio-compatible API root, default https://api.twilio.com).

    Status callbacks: by default each message asks Twilio to report its delivery to the platform's own
    callback URL, which the send path hands over in the message's metadata (`status_callback`; see
    apps.delivery.tracking). Option status_callback false sends none; a URL sends that one instead."""

    name = "twilio"
    kinds = frozenset({"sms"})

    def __init__(
        self,
        *,
        options: Mapping[str, Any],
        secrets: Mapping[str, Any],
        timeout: float = 10.0,
        kind: str = "",
    ) -> None:
        super().__init__(options=options, secrets=secrets, timeout=timeout, kind=kind)
        self._client: TwilioClient | None = None
        self._http: TwilioHttpClient | None = None

    @classmethod
    def config_errors(cls, *, options: Mapping[str, Any], secrets: Mapping[str, Any]) -> list[str]:
        errors = []
        for key in ("account_sid", "auth_token"):
            if not isinstance(secrets.get(key), str) or not secrets.get(key):
                errors.append(f"secret {key} is required")
        if not string_option(options, "from_") and not string_option(options, "messaging_service_sid"):
            errors.append("option from_ or option messaging_service_sid is required")
        if options.get("base_url") is not None and not is_http_url(options.get("base_url")):
            errors.append("option base_url must be an http(s) URL")
        callback = options.get("status_callback")
        if callback is not None and not isinstance(callback, bool) and not is_http_url(callback):
            errors.append("option status_callback must be true, false or an http(s) URL")
        return errors

    def open(self) -> None:
        if self._client is not None:
            return
        # One pooled requests session per batch; every call carries the timeout.
        self._http = TwilioHttpClient(pool_connections=True, timeout=self.timeout, logger=_twilio_http_logger)
        self._client = TwilioClient(
            self.secrets["account_sid"], self.secrets["auth_token"], http_client=self._http
        )
        base_url = string_option(self.options, "base_url")
        if base_url:
            # Each Twilio domain joins its base_url with the resource path at request time. Edge and
            # region (which the client also reads from TWILIO_EDGE / TWILIO_REGION) rewrite the host
            # name, which would point a gateway's URL somewhere else: they only apply to Twilio's hosts.
            self._client.api.base_url = base_url.rstrip("/")
            self._client.edge = None
            self._client.region = None

    def close(self) -> None:
        if self._http is not None and self._http.session is not None:
            self._http.session.close()
        self._http = None
        self._client = None

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        self.open()
        return [self._send_one(message) for message in messages]

    def _create_kwargs(self, message: OutboundMessage) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"to": message.to, "body": message.content.text}
        if sid := string_option(self.options, "messaging_service_sid"):
            kwargs["messaging_service_sid"] = sid
        if sender := string_option(self.options, "from_"):
            kwargs["from_"] = sender
        option = self.options.get("status_callback")
        if isinstance(option, str) and option.strip():
            kwargs["status_callback"] = option.strip()
        elif option is not False and (ours := message.metadata.get("status_callback")):
            kwargs["status_callback"] = ours
        return kwargs

    def _send_one(self, message: OutboundMessage) -> SendResult:
        if not message.to.strip():
            return failed(message, "no phone number")
        if not message.content.text.strip():
            return failed(message, "the rendered SMS has no text")
        assert self._client is not None
        try:
            created = self._client.messages.create(**self._create_kwargs(message))
        except TwilioRestException as exc:
            return self._map_status(message, exc.status, exc.code, _twilio_text(exc.msg))
        except TwilioException as exc:  # TwilioServiceException (RFC 9457 errors) and friends
            status = getattr(exc, "status", None)
            code = getattr(exc, "code", None)
            text = getattr(exc, "detail", None) or getattr(exc, "title", None) or type(exc).__name__
            if isinstance(status, int):
                return self._map_status(message, status, code, str(text))
            return retry(message, f"Twilio error: {text}")
        except requests.Timeout:
            return retry(message, f"Twilio timed out after {self.timeout:g}s")
        except requests.ConnectionError:
            return retry(message, "Twilio connection failed")
        except Exception as exc:
            return unexpected(message, exc, self.name)
        return sent(message, str(created.sid or ""))

    @staticmethod
    def _map_status(message: OutboundMessage, status: int, code: object, text: str) -> SendResult:
        reason = f"Twilio error {code} (HTTP {status}): {text}"
        return retry(message, reason) if http_status_is_retryable(status) else failed(message, reason)


def _twilio_text(msg: object) -> str:
    # twilio-python prefixes the API's message with its own "Unable to create record: ".
    text = str(msg or "")
    prefix = "Unable to create record: "
    return text[len(prefix) :] if text.startswith(prefix) else text
