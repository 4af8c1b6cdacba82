"""Sealed tokens for public links (tracked clicks and opens, unsubscribe links): a small JSON value,
encrypted and authenticated with a key derived from SECRET_KEY and a salt of each use, so a token reveals
nothing (no customer id, no address) and cannot be forged or moved from one use to another. The keys of
SECRET_KEY_FALLBACKS still open tokens, so rotating SECRET_KEY does not break links already sent."""

from __future__ import annotations

import base64
import functools
import json
import zlib
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.utils.crypto import salted_hmac


@functools.lru_cache(maxsize=8)
def _fernet_for(salt: str, secrets: tuple[str, ...]) -> MultiFernet:
    return MultiFernet(
        [
            Fernet(
                base64.urlsafe_b64encode(
                    salted_hmac(salt, "fernet", secret=secret, algorithm="sha256").digest()
                )
            )
            for secret in secrets
        ]
    )


def _fernet(salt: str) -> MultiFernet:
    return _fernet_for(salt, (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS))


def seal(*, salt: str, value: Any, compress: bool = False) -> str:
    data = json.dumps(value, separators=(",", ":")).encode()
    return _fernet(salt).encrypt(zlib.compress(data) if compress else data).decode("ascii")


def unseal(*, salt: str, token: str, compressed: bool = False) -> Any:
    """The value sealed with this salt, or None for anything else (forged, altered, another salt)."""
    try:
        data = _fernet(salt).decrypt(token.encode("ascii"))
        # Decompressed only once authenticated: nobody else can hand us a compressed payload.
        return json.loads(zlib.decompress(data) if compressed else data)
    except (InvalidToken, UnicodeEncodeError, zlib.error, ValueError):
        return None


def whole_number(value: object) -> int | None:
    """A JSON integer read back from a token (not a bool, which Python counts as one), or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
