"""Push notifications through Firebase Cloud Messaging (firebase-admin, HTTP v1 API)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import firebase_admin
from firebase_admin import credentials, exceptions, messaging
from google.auth.transport import requests as google_requests
from requests.adapters import HTTPAdapter

from apps.channels.base import (
    ChannelBackend,
    OutboundMessage,
    SendResult,
    failed,
    parse_retry_after,
    retry,
    sent,
    string_option,
    unexpected,
)
from apps.channels.registry import register_backend

logger = logging.getLogger(__name__)

FCM_MAX_PER_CALL = 500  # send_each refuses more
FCM_ORIGIN = "https://fcm.googleapis.com"
# FCM error codes that can heal by themselves; anything else (invalid or unregistered token, a sender
# mismatch, bad credentials) fails the same way again.
RETRYABLE_CODES = frozenset(
    {
        exceptions.UNAVAILABLE,
        exceptions.INTERNAL,
        exceptions.RESOURCE_EXHAUSTED,  # QuotaExceededError
        exceptions.DEADLINE_EXCEEDED,
        exceptions.ABORTED,
        exceptions.UNKNOWN,
    }
)
REQUIRED_SERVICE_ACCOUNT_KEYS = ("private_key", "client_email")

_apps_lock = threading.Lock()
_token_lock = threading.Lock()


class _TimeoutRequest:
    """google-auth's transport for the token call, with our timeout instead of its 120 s default."""

    def __init__(self, timeout: float) -> None:
        self._request = google_requests.Request()
        self._timeout = timeout

    def __call__(
        self, url: str, method: str = "GET", body: Any = None, headers: Any = None, **kwargs: Any
    ) -> Any:
        kwargs["timeout"] = self._timeout
        return self._request(url, method=method, body=body, headers=headers, **kwargs)


def service_account_info(secrets: Mapping[str, Any]) -> dict[str, Any] | None:
    """The service account key from secrets, stored either as an object or as its JSON text."""
    value = secrets.get("service_account")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return dict(value) if isinstance(value, Mapping) else None


def firebase_app_for(info: Mapping[str, Any], *, project_id: str, timeout: float) -> firebase_admin.App:
    """One firebase App per credentials (and timeout), created once per process and reused by every
    batch, so its OAuth token and connection pool are reused too. The name is a hash: two channels on
    one project with the same key share an App; a rotated key gets a new one."""
    fingerprint = json.dumps(
        [project_id, info.get("client_email"), info.get("private_key_id"), info.get("private_key"), timeout]
    )
    name = "channels-fcm-" + hashlib.sha256(fingerprint.encode()).hexdigest()[:24]
    with _apps_lock:
        try:
            return firebase_admin.get_app(name)
        except ValueError:
            pass
        app = firebase_admin.initialize_app(
            credentials.Certificate(dict(info)),
            {"projectId": project_id, "httpTimeout": timeout},
            name=name,
        )
        _disable_sdk_retries(app)
        return app


def _disable_sdk_retries(app: firebase_admin.App) -> None:
    """firebase-admin retries 500/503 up to four times with backoff inside one call, holding the worker
    for seconds. Retrying is the platform's job (with its own backoff and a finite count), so the FCM
    origin gets an adapter without retries. The SDK keeps this session on a private attribute: if that
    changes, we only lose the shortcut, not correctness."""
    service = messaging._get_messaging_service(app)
    session = getattr(getattr(service, "_client", None), "session", None)
    if session is not None and hasattr(session, "mount"):
        session.mount(FCM_ORIGIN, HTTPAdapter(pool_connections=10, pool_maxsize=100, max_retries=0))
    else:  # pragma: no cover - depends on the SDK's internals
        logger.warning("firebase-admin internals changed; FCM calls keep the SDK's own retries")


@register_backend
class FcmBackend(ChannelBackend):
    """Secrets: service_account (the key JSON, as an object or text). Options: project_id (default: the
    key's), android_priority ("high" or "normal"), deep_link_key (data key for the deep link, default
    "deep_link"), address_type ("token", the default: the address is a registration token; or "fid":
    a Firebase installation id)."""

    name = "fcm"
    kinds = frozenset({"push"})

    def __init__(
        self,
        *,
        options: Mapping[str, Any],
        secrets: Mapping[str, Any],
        timeout: float = 10.0,
        kind: str = "",
    ) -> None:
        super().__init__(options=options, secrets=secrets, timeout=timeout, kind=kind)
        info = service_account_info(self.secrets)
        assert info is not None  # config_errors checked it
        self._info = info
        self.project_id = string_option(self.options, "project_id") or str(info.get("project_id") or "")
        self.deep_link_key = string_option(self.options, "deep_link_key") or "deep_link"
        self.android_priority = string_option(self.options, "android_priority") or "high"
        self.address_type = string_option(self.options, "address_type") or "token"
        self._app: firebase_admin.App | None = None

    @classmethod
    def config_errors(cls, *, options: Mapping[str, Any], secrets: Mapping[str, Any]) -> list[str]:
        info = service_account_info(secrets)
        if info is None:
            return ["secret service_account is required: the service account key JSON"]
        errors = []
        if info.get("type") != "service_account":
            errors.append('secret service_account must be a service account key ("type": "service_account")')
        missing = [k for k in REQUIRED_SERVICE_ACCOUNT_KEYS if not info.get(k)]
        if missing:
            errors.append(f"secret service_account lacks {', '.join(missing)}")
        if not (string_option(options, "project_id") or info.get("project_id")):
            errors.append("a project id is required: in the service account key or option project_id")
        if options.get("android_priority") not in (None, "high", "normal"):
            errors.append('option android_priority must be "high" or "normal"')
        if options.get("address_type") not in (None, "token", "fid"):
            errors.append(
                'option address_type must be "token" (registration token) or "fid" (installation id)'
            )
        if not errors:
            try:
                credentials.Certificate(dict(info))
            except (ValueError, TypeError):
                # The library's message may quote the key; ours does not.
                errors.append("secret service_account holds a private key that cannot be read")
        return errors

    def open(self) -> None:
        if self._app is None:
            try:
                self._app = firebase_app_for(self._info, project_id=self.project_id, timeout=self.timeout)
            except Exception:  # reported per message by send_batch
                logger.exception("cannot set up the firebase app for project %s", self.project_id)

    def build_message(self, message: OutboundMessage) -> messaging.Message:
        content = message.content
        data = {str(k): str(v) for k, v in content.data.items()}
        webpush = None
        if content.deep_link:
            data[self.deep_link_key] = content.deep_link
            if content.deep_link.startswith("https://"):  # FCM accepts only HTTPS web links
                webpush = messaging.WebpushConfig(
                    fcm_options=messaging.WebpushFCMOptions(link=content.deep_link)
                )
        notification = None
        if content.subject or content.text:
            notification = messaging.Notification(title=content.subject or None, body=content.text or None)
        target = {self.address_type: message.to}
        with warnings.catch_warnings():
            # firebase-admin 7.7 deprecates `token` in favour of installation ids (`fid`), but the
            # registration tokens apps hand out are what customers' profiles hold; FCM still takes them.
            warnings.filterwarnings("ignore", "Message.token is deprecated", DeprecationWarning)
            return messaging.Message(
                notification=notification,
                data=data or None,
                android=messaging.AndroidConfig(priority=self.android_priority),
                webpush=webpush,
                **target,
            )

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        self.open()
        results: dict[int, SendResult] = {}
        ready: list[tuple[int, OutboundMessage, messaging.Message]] = []
        for index, message in enumerate(messages):
            if self._app is None:
                results[index] = retry(message, "FCM is not available: the firebase app could not be set up")
                continue
            if not message.to.strip():
                results[index] = failed(message, "no device token")
                continue
            if not (message.content.subject or message.content.text or message.content.data):
                results[index] = failed(message, "the rendered push has no title, body or data")
                continue
            try:
                built = self.build_message(message)
                # Encoding checks the message the way send_each would, but for this message alone:
                # one bad message must not fail its whole batch.
                messaging._MessagingService.encode_message(built)
            except (ValueError, TypeError) as exc:
                results[index] = failed(message, f"invalid push message: {exc}")
                continue
            ready.append((index, message, built))
        if ready:
            token_error = self._ensure_token()
            if token_error is not None:
                for index, message, _ in ready:
                    results[index] = self._map_call_error(message, token_error)
                ready = []
        for start in range(0, len(ready), FCM_MAX_PER_CALL):
            chunk = ready[start : start + FCM_MAX_PER_CALL]
            results.update(self._send_chunk(chunk))
        return [results[index] for index in range(len(messages))]

    def _ensure_token(self) -> Exception | None:
        """Fetches the OAuth token once, before send_each fans out over its threads: on a cold App
        every thread would otherwise fetch its own token at the same moment (500 calls to Google's
        token endpoint for one batch)."""
        assert self._app is not None
        credential = self._app.credential.get_credential()
        if credential.valid:
            return None
        with _token_lock:
            if credential.valid:  # another thread fetched it while we waited
                return None
            try:
                credential.refresh(_TimeoutRequest(self.timeout))
            except Exception as exc:
                return exc
        return None

    def _send_chunk(
        self, chunk: list[tuple[int, OutboundMessage, messaging.Message]]
    ) -> dict[int, SendResult]:
        try:
            batch = messaging.send_each([built for _, _, built in chunk], app=self._app)
        except exceptions.FirebaseError as exc:
            # The whole call failed (typically the OAuth token could not be fetched).
            return {index: self._map_call_error(message, exc) for index, message, _ in chunk}
        except Exception as exc:
            return {index: unexpected(message, exc, self.name) for index, message, _ in chunk}
        results: dict[int, SendResult] = {}
        for (index, message, _), response in zip(chunk, batch.responses, strict=True):
            if response.success:
                results[index] = sent(message, str(response.message_id))
            else:
                results[index] = self._map_error(message, response.exception)
        return results

    @staticmethod
    def _map_error(message: OutboundMessage, exc: exceptions.FirebaseError | None) -> SendResult:
        if exc is None:
            return retry(message, "FCM answered without a message id")
        reason = f"FCM {type(exc).__name__} ({exc.code}): {exc}"
        if exc.code in RETRYABLE_CODES:
            response = exc.http_response
            retry_after = (
                parse_retry_after(response.headers.get("Retry-After")) if response is not None else None
            )
            return retry(message, reason, retry_after=retry_after)
        return failed(message, reason)

    @staticmethod
    def _map_call_error(message: OutboundMessage, exc: Exception) -> SendResult:
        from google.auth.exceptions import RefreshError

        cause = exc.cause if isinstance(exc, exceptions.FirebaseError) else exc
        if isinstance(cause, RefreshError) and not getattr(cause, "retryable", False):
            return failed(message, f"FCM credentials were refused by Google: {cause}")
        return retry(message, f"FCM call failed: {type(cause or exc).__name__}")
