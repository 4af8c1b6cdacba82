"""The client API: a client's own systems read and set their customers' consent per channel.

    GET  /api/v1/clients/<slug>/channels/<ChannelID>/subscriptions/<customer_id>
    PUT  /api/v1/clients/<slug>/channels/<ChannelID>/subscriptions/<customer_id>   {"status": "opted_out"}
    POST /api/v1/clients/<slug>/channels/<ChannelID>/subscriptions/bulk            {"updates": [...]}

Authentication is a per-client token (`Authorization: Bearer <token>`): none, an unknown or a revoked
one is 401; a token of another client is 403, whether or not the other client exists, so a token
holder learns nothing about other clients. An unknown channel of the token's own client is 404. Every
error answers `{"error": "..."}`; bad input adds `"errors": ["updates[17].status: ...", ...]` and changes
nothing. Writes go through `subscriptions_set` (source api, the token's prefix as evidence).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView, exception_handler

from apps.clients.models import Channel, ClientApiToken
from apps.subscriptions.api_auth import BEARER_USAGE, ClientApiTokenAuthentication
from apps.subscriptions.api_serializers import ConsentBulkSerializer, ConsentSetSerializer, CustomerIdField
from apps.subscriptions.models import ConsentSource, ConsentStatus, Subscription
from apps.subscriptions.services import ConsentUpdate, subscriptions_set

MAX_LISTED_ERRORS = 50


class BoundedJSONParser(JSONParser):
    """JSON only, and no more of it than SUBSCRIPTIONS_API_MAX_BODY_BYTES."""

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        limit = settings.SUBSCRIPTIONS_API_MAX_BODY_BYTES
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise exceptions.ParseError(f"the body is larger than {limit} bytes")
        return super().parse(io.BytesIO(raw), media_type, parser_context)


def _error_paths(detail: Any, path: str = "") -> list[str]:
    """DRF's nested errors as `path: message` lines, e.g. `updates[17].status: must be one of ...`."""
    if isinstance(detail, Mapping):
        lines: list[str] = []
        for key, value in detail.items():
            if key == api_settings.NON_FIELD_ERRORS_KEY:
                child = path
            elif isinstance(key, int):
                child = f"{path}[{key}]"
            else:
                child = f"{path}.{key}" if path else str(key)
            lines.extend(_error_paths(value, child))
        return lines
    if isinstance(detail, list):
        return [line for item in detail for line in _error_paths(item, path)]
    return [f"{path}: {detail}" if path else str(detail)]


def client_api_exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    if isinstance(exc, exceptions.UnsupportedMediaType):
        # A body that is not JSON is bad input like any other: 400, with what to send instead.
        sent = exc.args[0] if exc.args else ""
        exc = exceptions.ParseError(
            f"the body must be JSON sent with Content-Type: application/json, not {sent or 'none'}"
        )
    if isinstance(exc, exceptions.NotAuthenticated):
        auth_header = getattr(exc, "auth_header", None)
        exc = exceptions.NotAuthenticated(f"no API token: {BEARER_USAGE}")
        exc.auth_header = auth_header  # type: ignore[attr-defined]  # set by APIView for the 401 header
    response = exception_handler(exc, dict(context))
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        lines = _error_paths(exc.detail)
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        response.data = {"error": f"{lines[0]}{more}", "errors": lines[:MAX_LISTED_ERRORS]}
    else:
        response.data = {"error": _error_paths(response.data.get("detail", response.data))[0]}
    return response


class ClientApiView(APIView):
    authentication_classes = [ClientApiTokenAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = [BoundedJSONParser]
    renderer_classes = [JSONRenderer]
    throttle_classes: list[Any] = []

    def get_exception_handler(self) -> Any:
        return client_api_exception_handler

    @staticmethod
    def token(request: Request) -> ClientApiToken:
        token = request.auth
        if not isinstance(token, ClientApiToken):  # IsAuthenticated has let only our tokens through
            raise exceptions.NotAuthenticated()
        return token

    def channel(self, request: Request, client_slug: str, channel_id: int) -> Channel:
        """The channel the URL names, when the request's token is one of its client's."""
        token = self.token(request)
        if token.client.slug != client_slug:
            raise exceptions.PermissionDenied("this token belongs to another client")
        if not token.client.is_active:
            raise exceptions.PermissionDenied(f"client {client_slug} is not active")
        channel = (
            Channel.objects.select_related("client")
            .filter(client_id=token.client_id, optimove_channel_id=channel_id)
            .first()
        )
        if channel is None:
            raise exceptions.NotFound(f"client {client_slug} has no channel {channel_id}")
        return channel

    def detail(self, request: Request) -> str:
        """The evidence recorded with an API change: which token made it (its prefix, never the token)."""
        return self.token(request).prefix


def _path_customer_id(customer_id: str) -> str:
    try:
        return str(CustomerIdField().run_validation(customer_id))
    except exceptions.ValidationError as exc:
        raise exceptions.ValidationError({"customer_id": exc.detail}) from exc


def _state(channel: Channel, customer_id: str) -> dict[str, Any]:
    row = (
        Subscription.objects.filter(channel=channel, customer_id=customer_id)
        .values("status", "changed_at", "source")
        .first()
    )
    changed_at: datetime | None = row["changed_at"] if row else None
    return {
        "customer_id": customer_id,
        "channel_id": channel.optimove_channel_id,
        "status": row["status"] if row else ConsentStatus.UNKNOWN.value,
        "changed_at": changed_at,
        "source": row["source"] if row else None,
    }


class SubscriptionApi(ClientApiView):
    """One customer's state on one channel: read it, or set it."""

    def get(self, request: Request, client_slug: str, channel_id: int, customer_id: str) -> Response:
        channel = self.channel(request, client_slug, channel_id)
        return Response(_state(channel, _path_customer_id(customer_id)))

    def put(self, request: Request, client_slug: str, channel_id: int, customer_id: str) -> Response:
        channel = self.channel(request, client_slug, channel_id)
        customer_id = _path_customer_id(customer_id)
        serializer = ConsentSetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changed = subscriptions_set(
            channel=channel,
            updates=[ConsentUpdate(customer_id=customer_id, status=serializer.validated_data["status"])],
            source=ConsentSource.API,
            detail=self.detail(request),
        )
        return Response({**_state(channel, customer_id), "changed": changed == 1})


class SubscriptionBulkApi(ClientApiView):
    """Up to 10,000 customers' states on one channel, all or none."""

    def post(self, request: Request, client_slug: str, channel_id: int) -> Response:
        channel = self.channel(request, client_slug, channel_id)
        serializer = ConsentBulkSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        updates = [ConsentUpdate(**item) for item in serializer.validated_data["updates"]]
        changed = subscriptions_set(
            channel=channel, updates=updates, source=ConsentSource.API, detail=self.detail(request)
        )
        return Response({"changed": changed}, status=status.HTTP_200_OK)
