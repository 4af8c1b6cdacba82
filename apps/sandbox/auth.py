"""Who is calling: an `X-API-KEY`, or a legacy `Authorization-Token` from `login`.

Tokens live in Redis with a sliding TTL, as Optimove's do: each call refreshes it, and a second login
while the account's token is still alive is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings

from apps.core.redis import get_redis
from apps.sandbox.models import SandboxAccount

_SESSION_KEY_PREFIX = "sandbox:session:"
_ACCOUNT_SESSION_KEY_PREFIX = "sandbox:account-session:"

# Refuses a second login while the account's current token is alive; otherwise stores the new one.
_LOGIN = """
local current = redis.call('GET', KEYS[1])
if current and redis.call('EXISTS', ARGV[3] .. current) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', ARGV[3] .. ARGV[1], ARGV[4], 'EX', ARGV[2])
return 1
"""


class AuthFailure(Exception):
    """Why a caller is turned away: the HTTP status and the short message Optimove would give."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _token_digest(token: str) -> str:
    # Redis holds a digest, so a look at Redis does not hand out working tokens.
    return hashlib.sha256(token.encode()).hexdigest()


def sandbox_login_check(*, username: str, password: str) -> SandboxAccount:
    """The account these legacy credentials belong to, or AuthFailure 401."""
    account = SandboxAccount.objects.filter(username=username).exclude(username="").first()
    if account is None or not hmac.compare_digest(account.password.encode(), password.encode()):
        raise AuthFailure(401, "Invalid UserName or Password")
    return account


def sandbox_token_issue(*, account: SandboxAccount) -> str:
    """A fresh token for the account, or AuthFailure 429 while its previous token is still alive."""
    token = secrets.token_urlsafe(32)
    stored = get_redis().eval(
        _LOGIN,
        1,
        f"{_ACCOUNT_SESSION_KEY_PREFIX}{account.pk}",
        _token_digest(token),
        settings.SANDBOX_TOKEN_TTL_SECONDS,
        _SESSION_KEY_PREFIX,
        account.pk,
    )
    if not stored:
        raise AuthFailure(429, "A token for this user is still valid; use it until it expires")
    return token


def sandbox_authenticate(*, api_key: str | None, token: str | None) -> SandboxAccount:
    """The calling account, or AuthFailure 401 (missing or wrong key) / 403 (expired token)."""
    if api_key:
        account = SandboxAccount.objects.filter(api_key=api_key).first()
        if account is None:
            raise AuthFailure(401, "Invalid X-API-KEY")
        return account
    if token:
        digest = _token_digest(token)
        redis = get_redis()
        raw_id = redis.get(f"{_SESSION_KEY_PREFIX}{digest}")
        account = SandboxAccount.objects.filter(pk=int(raw_id)).first() if raw_id else None
        if account is None:
            raise AuthFailure(403, "Authorization-Token expired")
        ttl = settings.SANDBOX_TOKEN_TTL_SECONDS
        with redis.pipeline(transaction=True) as pipe:
            pipe.expire(f"{_SESSION_KEY_PREFIX}{digest}", ttl)
            pipe.expire(f"{_ACCOUNT_SESSION_KEY_PREFIX}{account.pk}", ttl)
            pipe.execute()
        return account
    raise AuthFailure(401, "Missing X-API-KEY header")
