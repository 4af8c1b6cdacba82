"""Per-client API tokens: created, checked and revoked here only.

A token reads `cpt_<8 hex>_<43 url-safe characters>`. The first twelve characters are its `prefix`,
stored in clear to find the row and to name the token in the admin and in consent history; the rest is
256 random bits. Only the SHA-256 of the whole token is stored (a random 256-bit secret needs no slow
hash), and it is compared in constant time. The plaintext is returned once, by `client_api_token_create`,
and never stored, logged or put in an exception's message.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from apps.clients.models import Client, ClientApiToken

TOKEN_TAG = "cpt_"  # noqa: S105 - the public tag every token starts with, not a secret
PREFIX_LENGTH = len(TOKEN_TAG) + 8
# `last_used_at` is for people ("is this token still in use?"): one write a minute per token is plenty,
# and a busy integration does not turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenInvalid(Exception):
    """The presented token is malformed, unknown or revoked. The message never holds the token."""


@dataclass(frozen=True)
class IssuedApiToken:
    token: ClientApiToken
    plaintext: str  # shown to a person once, then forgotten


def _digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def client_api_token_create(*, client: Client, name: str) -> IssuedApiToken:
    """Creates a token for the client and returns it with its plaintext, the only time it exists."""
    name = name.strip()
    if not name:
        raise ValueError("a token needs a name saying who uses it")
    prefix = f"{TOKEN_TAG}{secrets.token_hex(4)}"
    plaintext = f"{prefix}_{secrets.token_urlsafe(32)}"
    token = ClientApiToken.objects.create(
        client=client, name=name, prefix=prefix, token_hash=_digest(plaintext)
    )
    return IssuedApiToken(token=token, plaintext=plaintext)


def client_api_token_revoke(*, token: ClientApiToken, at: datetime | None = None) -> bool:
    """Revokes the token from now on; True when it was still live. Revoking twice keeps the first time."""
    when = at or timezone.now()
    revoked = ClientApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=when, updated_at=when
    )
    if revoked:
        token.revoked_at = when
    return bool(revoked)


def client_api_token_authenticate(*, plaintext: str, at: datetime | None = None) -> ClientApiToken:
    """The live token `plaintext` is, with its client loaded; raises ApiTokenInvalid otherwise."""
    if not plaintext.startswith(TOKEN_TAG) or len(plaintext) <= PREFIX_LENGTH + 1:
        raise ApiTokenInvalid("malformed token")
    token = ClientApiToken.objects.select_related("client").filter(prefix=plaintext[:PREFIX_LENGTH]).first()
    # Compared even when no row was found, so an unknown prefix costs the same as a wrong secret.
    stored = token.token_hash if token is not None else "0" * 64
    if not hmac.compare_digest(_digest(plaintext), stored) or token is None:
        raise ApiTokenInvalid("unknown token")
    if token.revoked_at is not None:
        raise ApiTokenInvalid("this token was revoked")
    now = at or timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ClientApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token
