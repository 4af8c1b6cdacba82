"""Authentication of the client API: `Authorization: Bearer <token>` with a per-client API token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from apps.clients.api_tokens import ApiTokenInvalid, client_api_token_authenticate
from apps.clients.models import ClientApiToken

BEARER_USAGE = "send the client's API token as “Authorization: Bearer <token>”"


@dataclass(frozen=True)
class ApiTokenUser:
    """Who `request.user` is on the client API: the holder of one client's token, not a Django user."""

    token: ClientApiToken
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def client_id(self) -> int:
        return self.token.client_id


class ClientApiTokenAuthentication(BaseAuthentication):
    """No header (or another scheme) leaves the request anonymous, which the views answer with 401; a
    Bearer token that is malformed, unknown or revoked is refused with 401 at once. Error messages
    never repeat the token."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise AuthenticationFailed(f"malformed Authorization header: {BEARER_USAGE}")
        try:
            plaintext = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed("malformed token") from exc
        try:
            token = client_api_token_authenticate(plaintext=plaintext)
        except ApiTokenInvalid as exc:
            raise AuthenticationFailed(str(exc)) from exc
        return ApiTokenUser(token=token), token

    def authenticate_header(self, request: Request) -> str:
        # Its presence makes DRF answer 401 (not 403) to a request without valid credentials.
        return 'Bearer realm="client-api"'
