"""Provider names to backend classes, and building a channel's backend from its stored settings."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from apps.channels.base import ChannelBackend, ChannelConfigError, UnknownBackendError

if TYPE_CHECKING:
    from apps.clients.models import Channel

DEFAULT_TIMEOUT_SECONDS = 10.0

_BACKENDS: dict[str, type[ChannelBackend]] = {}
_BUILTIN_MODULES = (
    "apps.channels.backends.console",
    "apps.channels.backends.email",
    "apps.channels.backends.sms",
    "apps.channels.backends.push",
    "apps.channels.backends.webhook",
)
_builtins_loaded = False

BackendT = TypeVar("BackendT", bound=type[ChannelBackend])


def register_backend(cls: BackendT) -> BackendT:
    """Registers a backend under `cls.name` (usable as a class decorator). A second class under the same
    name replaces the first, so a project can swap in its own."""
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"{cls.__name__}.name must be a non-empty name without ':', got {name!r}")
    kinds = getattr(cls, "kinds", None)
    if not isinstance(kinds, frozenset) or not kinds:
        raise ValueError(f"{cls.__name__}.kinds must be a non-empty frozenset of channel kinds")
    _BACKENDS[name] = cls
    return cls


def _load_builtins() -> None:
    # Imported on first use rather than at module import: the backend modules import this one.
    global _builtins_loaded
    if not _builtins_loaded:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True


def known_providers() -> list[str]:
    _load_builtins()
    names = []
    for name, cls in sorted(_BACKENDS.items()):
        has_variants = cls.variant.__func__ is not ChannelBackend.variant.__func__  # type: ignore[attr-defined]
        names.append(f"{name}:<{getattr(cls, 'variant_label', 'variant')}>" if has_variants else name)
    return names


def backend_class(name: str) -> type[ChannelBackend]:
    """The class for a provider name such as `smtp`, `twilio` or `anymail:postmark`."""
    _load_builtins()
    base, _, suffix = name.partition(":")
    cls = _BACKENDS.get(base)
    if cls is None:
        raise UnknownBackendError(
            f"unknown provider {name!r}; known providers: {', '.join(known_providers())}"
        )
    return cls.variant(suffix) if suffix else cls


def channel_config_errors(
    *, provider: str, kind: str, options: Mapping[str, Any], secrets: Mapping[str, Any]
) -> list[str]:
    """Everything wrong with a channel's provider settings, for the admin and `client_apply`."""
    try:
        cls = backend_class(provider)
    except ChannelConfigError as exc:
        return [str(exc)]
    errors = []
    if kind not in cls.kinds:
        errors.append(
            f"provider {provider!r} cannot send {kind!r} messages (it sends {', '.join(sorted(cls.kinds))})"
        )
    errors.extend(cls.config_errors(options=options, secrets=secrets))
    timeout = options.get("timeout_seconds")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        errors.append("option timeout_seconds must be a positive number")
    return errors


def backend_for(channel: Channel) -> ChannelBackend:
    """A ready-to-open backend for the channel. Raises ChannelConfigError (a TerminalError) naming what is
    wrong when the settings cannot work; secrets' values never appear in it."""
    cls = backend_class(channel.provider)
    if channel.kind not in cls.kinds:
        raise ChannelConfigError(
            f"provider {channel.provider!r} cannot send {channel.kind!r} messages "
            f"(it sends {', '.join(sorted(cls.kinds))})"
        )
    options: Mapping[str, Any] = channel.provider_options or {}
    secrets: Mapping[str, Any] = channel.provider_secrets or {}
    timeout = options.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ChannelConfigError("option timeout_seconds must be a positive number")
    return cls(options=options, secrets=secrets, timeout=float(timeout), kind=channel.kind)
