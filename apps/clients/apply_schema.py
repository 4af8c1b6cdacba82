"""Reading and validating a client file (`manage.py client_apply`), before anything is written.

One client per file, YAML or JSON. The top level is a strict mapping: every section is declared in
`CLIENT_REQUIRED_SECTIONS` / `CLIENT_OPTIONAL_SECTIONS`, and a key nobody declared is an error rather
than something silently ignored. Mappings further down (a channel, a template) are just as strict.

Message templates belong to a channel, so they are listed under it (`channels[0].templates`). A channel
entry without a `templates:` key leaves that channel's stored templates alone; a present list is the
whole truth for that channel (with `--prune`, stored templates it does not list are deleted). A push
channel's apps (`channels[0].apps: [{app_id, name}]`) work the same way. Templates
are checked here with the same rules as the admin's (`message_templates.validation`): the parts the
channel's kind needs, and that every part compiles.

Secrets (`optimove.api_key`, `optimove.password`, the values of `provider_secrets`) may be literal or
`env:NAME`, read from the environment when the file is applied. A secret that is absent keeps the
stored value, `null` clears it. Nothing here ever puts a secret's value into an error message.

Every problem is reported with its path (`channels[1].kind: ...`) and all of them are reported at once,
so a file is fixed in one round.
"""

from __future__ import annotations

import enum
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_slug

from apps.clients.models import Channel, ChannelKind, Client, ConsentSync, ScheduledEventType
from apps.core.jsonsafe import text_unstorable
from apps.message_templates.models import MessageTemplate
from apps.message_templates.validation import template_content_errors

T = TypeVar("T")


class Keep(enum.Enum):
    """A secret the file does not mention: the stored value stays."""

    KEEP = "keep"


KEEP = Keep.KEEP
# str sets the secret, None clears it, KEEP leaves it as stored.
SecretUpdate = str | None | Literal[Keep.KEEP]


class ClientFileError(ValueError):
    """A client file that cannot be applied. `errors` holds one `path: problem` line per problem."""

    def __init__(self, errors: list[str] | tuple[str, ...]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True)
class TemplateSpec:
    """One message template as the file gives it; the parts the file leaves out take the model's
    defaults (empty text, no payload), so the file describes the whole template."""

    template_id: int
    name: str
    is_active: bool
    subject: str
    html_body: str
    text_body: str
    payload: Any  # any JSON value; None is no payload
    deep_link: str


@dataclass(frozen=True)
class AppSpec:
    """One app of a push channel as the file gives it."""

    app_id: str
    name: str
    is_active: bool


@dataclass(frozen=True)
class ChannelSpec:
    channel_id: int
    name: str
    kind: str
    provider: str
    provider_options: Mapping[str, Any]
    # Per key: str sets it, None removes it; keys not listed keep their stored values.
    provider_secrets: Mapping[str, str | None] = field(repr=False)
    address_attribute: str
    rate_limit_per_second: int | None
    is_realtime: bool
    scheduled_event_type: int
    is_active: bool
    consent_sync: str
    consent_attribute: str
    # None: the entry has no `templates:` key, and the channel's stored templates are left alone.
    templates: tuple[TemplateSpec, ...] | None = None
    # None: the entry has no `apps:` key (only push channels may have one); stored apps are left alone.
    apps: tuple[AppSpec, ...] | None = None


@dataclass(frozen=True)
class ClientSpec:
    slug: str
    name: str
    is_active: bool
    personal_data_retention_days: int
    optimove_base_url: str
    optimove_username: str
    optimove_api_key: SecretUpdate = field(repr=False)
    optimove_password: SecretUpdate = field(repr=False)
    channels: tuple[ChannelSpec, ...]


KINDS = tuple(choice.value for choice in ChannelKind)
SCHEDULED_EVENT_TYPES = tuple(int(choice.value) for choice in ScheduledEventType)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROVIDER = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_ADDRESS_ATTRIBUTE = re.compile(r"^[A-Za-z0-9_.\-]*$")
_CONSENT_ATTRIBUTE = re.compile(r"^[A-Za-z0-9_]*$")
CONSENT_SYNC_METHODS = tuple(choice.value for choice in ConsentSync)
DEFAULT_RETENTION_DAYS = int(Client._meta.get_field("personal_data_retention_days").get_default())
_MAX_INT = 2_147_483_647  # PostgreSQL integer
# A JSON value in the file (provider_options, a template's payload) is configuration, not data: a few
# levels and a few thousand values. The caps also stop a YAML file whose aliases repeat one list inside
# another ("billion laughs"), which would otherwise be walked, and then saved, exponentially.
MAX_JSON_DEPTH = 32
MAX_JSON_VALUES = 10_000


def load_document(*, text: str, filename: str = "") -> Mapping[str, Any]:
    """Parses a client file by its extension (.json, .yaml/.yml); any other name tries JSON, then YAML."""
    suffix = Path(filename).suffix.lower()
    if suffix == ".json":
        document = _parse_json(text)
    elif suffix in (".yaml", ".yml"):
        document = _parse_yaml(text)
    else:
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            document = _parse_yaml(text)
    if not isinstance(document, Mapping):
        raise ClientFileError([f"(top level): expected a mapping of keys, got {_type_name(document)}"])
    return document


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # The decoder's message says where, never what: no secret can leak through it.
        raise ClientFileError(
            [f"(file): not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"]
        ) from None
    except ValueError:  # int() refuses a number of more than 4300 digits
        raise ClientFileError(["(file): not valid JSON: a number is too long to read"]) from None
    except RecursionError:
        raise ClientFileError(["(file): not valid JSON: nested too deeply"]) from None


def _parse_yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except ValueError:  # PyYAML's int() of a number of more than 4300 digits
        raise ClientFileError(["(file): not valid YAML: a number is too long to read"]) from None
    except RecursionError:  # PyYAML composes nested nodes recursively
        raise ClientFileError(["(file): not valid YAML: nested too deeply"]) from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or "syntax error"
        # `problem` is the parser's description ("could not find expected ':'"), not the offending text.
        raise ClientFileError([f"(file): not valid YAML: {problem}{where}"]) from None


def parse_client_document(
    *, document: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> ClientSpec:
    """Validates a parsed client file and resolves its `env:` secrets; raises ClientFileError."""
    reader = _Reader(os.environ if environ is None else environ)
    spec = reader.client(document)
    if reader.errors or spec is None:
        raise ClientFileError(reader.errors or ["(top level): invalid"])
    return spec


def _key_shown(key: Any) -> str:
    """A mapping key for an error's path: as written when it is plain printable text, else its repr
    (which shows an empty key or stray spaces, and escapes NUL, control characters and surrogates)."""
    plain = isinstance(key, str) and key.isprintable() and key.strip() == key != ""
    return key if plain else repr(key)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


class _Reader:
    """Walks a document, collecting `path: problem` lines instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.errors: list[str] = []

    def error(self, path: str, problem: str) -> None:
        self.errors.append(f"{path}: {problem}")

    # -- shapes ---------------------------------------------------------------------------------

    def mapping(
        self, value: Any, path: str, *, required: tuple[str, ...], optional: tuple[str, ...]
    ) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.error(path, f"expected a mapping, got {_type_name(value)}")
            return None
        known = required + optional
        prefix = f"{path}." if path != "(top level)" else ""
        for key in value:
            if key not in known:
                self.error(f"{prefix}{_key_shown(key)}", f"unknown key (expected one of {', '.join(known)})")
        for key in required:
            if key not in value:
                self.error(f"{prefix}{key}", "required")
        return value

    def string(
        self, value: Any, path: str, *, max_length: int | None, allow_empty: bool = False
    ) -> str | None:
        if not isinstance(value, str):
            self.error(path, f"expected a string, got {_type_name(value)}")
            return None
        problem = text_unstorable(value)
        if problem:
            self.error(path, problem)
            return None
        if not value.strip() and not allow_empty:
            self.error(path, "must not be empty")
            return None
        if max_length is not None and len(value) > max_length:
            self.error(path, f"longer than {max_length} characters")
            return None
        return value

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.error(path, f"expected true or false, got {_type_name(value)}")
            return None
        return value

    def integer(self, value: Any, path: str, *, minimum: int) -> int | None:
        # bool is an int in Python; `true` as a ChannelID is a mistake, not 1.
        if not isinstance(value, int) or isinstance(value, bool):
            self.error(path, f"expected an integer, got {_type_name(value)}")
            return None
        if not minimum <= value <= _MAX_INT:
            self.error(path, f"{value} is out of range ({minimum} to {_MAX_INT})")
            return None
        return value

    def secret(self, value: Any, path: str) -> str | None:
        """A literal secret or `env:NAME`. Errors name the variable, never a value."""
        if not isinstance(value, str):
            self.error(path, f"expected a string or env:NAME, got {_type_name(value)}")
            return None
        problem = text_unstorable(value)
        if problem:
            self.error(path, problem)
            return None
        if value.startswith("env:"):
            name = value[4:]
            if not _ENV_NAME.match(name):
                self.error(path, f"{name!r} is not a valid environment variable name")
                return None
            resolved = self.environ.get(name)
            if resolved is None:
                self.error(path, f"environment variable {name} is not set")
                return None
            if not resolved:
                self.error(path, f"environment variable {name} is empty")
                return None
            return resolved
        if not value:
            self.error(path, "must not be empty (use null to clear the stored value)")
            return None
        return value

    def optional(
        self, container: Mapping[str, Any], key: str, default: T, read: Callable[[Any], T | None]
    ) -> T:
        """Reads `key` when present; an absent key takes `default`. A bad value yields the default
        (an error is recorded, so nothing is applied)."""
        if key not in container:
            return default
        result = read(container[key])
        return default if result is None else result

    # -- sections -------------------------------------------------------------------------------

    def client(self, document: Mapping[str, Any]) -> ClientSpec | None:
        top = self.mapping(
            document, "(top level)", required=CLIENT_REQUIRED_SECTIONS, optional=CLIENT_OPTIONAL_SECTIONS
        )
        if top is None:
            return None
        slug = self._slug(top["slug"]) if "slug" in top else None
        name = self.string(top["name"], "name", max_length=200) if "name" in top else None
        is_active = self.optional(top, "active", True, lambda v: self.boolean(v, "active"))
        retention = self.optional(
            top,
            "personal_data_retention_days",
            DEFAULT_RETENTION_DAYS,
            lambda v: self.integer(v, "personal_data_retention_days", minimum=1),
        )
        optimove = self._optimove(top["optimove"]) if "optimove" in top else None
        channels = self._channels(top["channels"]) if "channels" in top else ()
        if slug is None or name is None or optimove is None:
            return None
        base_url, username, api_key, password = optimove
        return ClientSpec(
            slug=slug,
            name=name,
            is_active=is_active,
            personal_data_retention_days=retention,
            optimove_base_url=base_url,
            optimove_username=username,
            optimove_api_key=api_key,
            optimove_password=password,
            channels=channels,
        )

    def _slug(self, value: Any) -> str | None:
        slug = self.string(value, "slug", max_length=64)
        if slug is None:
            return None
        try:
            validate_slug(slug)
        except ValidationError:
            self.error("slug", f"{slug!r} is not a slug (letters, digits, - and _ only)")
            return None
        return slug

    def _optimove(self, value: Any) -> tuple[str, str, SecretUpdate, SecretUpdate] | None:
        section = self.mapping(
            value, "optimove", required=("base_url",), optional=("api_key", "username", "password")
        )
        if section is None:
            return None
        base_url = self._url(section["base_url"], "optimove.base_url") if "base_url" in section else None
        username = self.optional(
            section, "username", "", lambda v: self.string(v, "optimove.username", max_length=200)
        )
        api_key = self._secret_update(section, "api_key", "optimove.api_key")
        password = self._secret_update(section, "password", "optimove.password")
        if isinstance(api_key, str) and isinstance(password, str):
            self.error("optimove", "give api_key or username and password, not both")
        if isinstance(password, str) and not username:
            self.error("optimove.username", "required when optimove.password is given")
        if base_url is None:
            return None
        return base_url, username, api_key, password

    def _secret_update(self, section: Mapping[str, Any], key: str, path: str) -> SecretUpdate:
        if key not in section:
            return KEEP
        if section[key] is None:
            return None
        resolved = self.secret(section[key], path)
        # An invalid secret is recorded as an error; KEEP here only keeps the types simple.
        return KEEP if resolved is None else resolved

    def _url(self, value: Any, path: str) -> str | None:
        url = self.string(value, path, max_length=300)
        if url is None:
            return None
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            self.error(path, f"{url!r} is not an http(s) URL")
            return None
        return url

    def _channels(self, value: Any) -> tuple[ChannelSpec, ...]:
        # `channels:` left empty is refused rather than read as "no channels": with --prune that
        # would delete every channel. An intended empty list is written `channels: []`.
        if not isinstance(value, list):
            self.error("channels", f"expected a list, got {_type_name(value)}")
            return ()
        channels: list[ChannelSpec] = []
        seen: dict[int, int] = {}
        for index, item in enumerate(value):
            path = f"channels[{index}]"
            channel = self._channel(item, path)
            if channel is None:
                continue
            if channel.channel_id in seen:
                self.error(
                    f"{path}.channel_id",
                    f"{channel.channel_id} is already used by channels[{seen[channel.channel_id]}]",
                )
                continue
            seen[channel.channel_id] = index
            channels.append(channel)
        return tuple(channels)

    def _channel(self, value: Any, path: str) -> ChannelSpec | None:
        item = self.mapping(
            value,
            path,
            required=("channel_id", "name", "kind", "provider"),
            optional=(
                "provider_options",
                "provider_secrets",
                "address_attribute",
                "rate_limit_per_second",
                "realtime",
                "scheduled_event_type",
                "active",
                "consent_sync",
                "consent_attribute",
                "templates",
                "apps",
            ),
        )
        if item is None:
            return None
        errors_before = len(self.errors)
        channel_id = (
            self.integer(item["channel_id"], f"{path}.channel_id", minimum=1)
            if "channel_id" in item
            else None
        )
        name = self.string(item["name"], f"{path}.name", max_length=200) if "name" in item else None
        kind = self._choice(item["kind"], f"{path}.kind", KINDS) if "kind" in item else None
        provider = self._provider(item["provider"], f"{path}.provider") if "provider" in item else None
        options: dict[str, Any] = self.optional(
            item, "provider_options", {}, lambda v: self._json_object(v, f"{path}.provider_options")
        )
        secrets: dict[str, str | None] = self.optional(
            item, "provider_secrets", {}, lambda v: self._provider_secrets(v, f"{path}.provider_secrets")
        )
        address_attribute = self.optional(
            item, "address_attribute", "", lambda v: self._address_attribute(v, f"{path}.address_attribute")
        )
        rate_limit: int | None = None
        if item.get("rate_limit_per_second") is not None:
            rate_limit = self.integer(
                item["rate_limit_per_second"], f"{path}.rate_limit_per_second", minimum=1
            )
        realtime = self.optional(item, "realtime", False, lambda v: self.boolean(v, f"{path}.realtime"))
        event_type = self.optional(
            item,
            "scheduled_event_type",
            int(ScheduledEventType.CAMPAIGN_EXECUTED_ON_CHANNEL),
            lambda v: self._event_type(v, f"{path}.scheduled_event_type"),
        )
        is_active = self.optional(item, "active", True, lambda v: self.boolean(v, f"{path}.active"))
        consent_sync = self.optional(
            item,
            "consent_sync",
            str(ConsentSync.PREFERENCE),
            lambda v: self._choice(v, f"{path}.consent_sync", CONSENT_SYNC_METHODS),
        )
        consent_attribute = self.optional(
            item, "consent_attribute", "", lambda v: self._consent_attribute(v, f"{path}.consent_attribute")
        )
        if consent_sync == ConsentSync.ATTRIBUTE and not item.get("consent_attribute"):
            self.error(f"{path}.consent_attribute", "required when consent_sync is attribute")
        templates = (
            self._templates(item["templates"], f"{path}.templates", kind) if "templates" in item else None
        )
        apps = self._apps(item["apps"], f"{path}.apps", kind) if "apps" in item else None
        if len(self.errors) > errors_before or channel_id is None or name is None or kind is None:
            return None
        if provider is None:
            return None
        return ChannelSpec(
            channel_id=channel_id,
            name=name,
            kind=kind,
            provider=provider,
            provider_options=options,
            provider_secrets=secrets,
            address_attribute=address_attribute,
            rate_limit_per_second=rate_limit,
            is_realtime=realtime,
            scheduled_event_type=event_type,
            is_active=is_active,
            consent_sync=consent_sync,
            consent_attribute=consent_attribute,
            templates=templates,
            apps=apps,
        )

    def _templates(self, value: Any, path: str, kind: str | None) -> tuple[TemplateSpec, ...]:
        # As with `channels:`, an empty `templates:` is refused rather than read as "none": with
        # --prune it would delete every template of the channel. No templates is `templates: []`.
        if not isinstance(value, list):
            self.error(path, f"expected a list, got {_type_name(value)}")
            return ()
        templates: list[TemplateSpec] = []
        seen: dict[int, int] = {}
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            template = self._template(item, item_path, kind)
            if template is None:
                continue
            if template.template_id in seen:
                self.error(
                    f"{item_path}.template_id",
                    f"{template.template_id} is already used by {path}[{seen[template.template_id]}]",
                )
                continue
            seen[template.template_id] = index
            templates.append(template)
        return tuple(templates)

    def _template(self, value: Any, path: str, kind: str | None) -> TemplateSpec | None:
        item = self.mapping(
            value,
            path,
            required=("template_id", "name"),
            optional=TEMPLATE_OPTIONAL_KEYS,
        )
        if item is None:
            return None
        errors_before = len(self.errors)
        template_id = (
            self.integer(item["template_id"], f"{path}.template_id", minimum=1)
            if "template_id" in item
            else None
        )
        name = self.string(item["name"], f"{path}.name", max_length=200) if "name" in item else None
        is_active = self.optional(item, "active", True, lambda v: self.boolean(v, f"{path}.active"))
        parts = {key: self._template_part(item, key, path) for key in _TEMPLATE_MAX_LENGTHS}
        payload: Any = None
        if item.get("payload") is not None:
            before_payload = len(self.errors)
            self._check_json(item["payload"], f"{path}.payload")
            if len(self.errors) == before_payload:
                payload = item["payload"]
        if len(self.errors) > errors_before or template_id is None or name is None:
            return None
        template = TemplateSpec(
            template_id=template_id,
            name=name,
            is_active=is_active,
            subject=parts["subject"],
            html_body=parts["html_body"],
            text_body=parts["text_body"],
            payload=payload,
            deep_link=parts["deep_link"],
        )
        if kind is not None:
            self._template_content(template, path, kind)
        return template

    def _apps(self, value: Any, path: str, kind: str | None) -> tuple[AppSpec, ...]:
        if kind is not None and kind != ChannelKind.PUSH:
            self.error(path, f"only push channels have apps (this channel's kind is {kind})")
            return ()
        # As with `templates:`, an empty `apps:` is refused rather than read as "none"; no apps is `apps: []`.
        if not isinstance(value, list):
            self.error(path, f"expected a list, got {_type_name(value)}")
            return ()
        apps: list[AppSpec] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            app = self._app(item, item_path)
            if app is None:
                continue
            if app.app_id in seen:
                self.error(
                    f"{item_path}.app_id", f"{app.app_id!r} is already used by {path}[{seen[app.app_id]}]"
                )
                continue
            seen[app.app_id] = index
            apps.append(app)
        return tuple(apps)

    def _app(self, value: Any, path: str) -> AppSpec | None:
        item = self.mapping(value, path, required=("app_id", "name"), optional=("active",))
        if item is None:
            return None
        errors_before = len(self.errors)
        app_id = self.string(item["app_id"], f"{path}.app_id", max_length=200) if "app_id" in item else None
        if app_id is not None and (app_id != app_id.strip() or not app_id.isprintable()):
            self.error(
                f"{path}.app_id", f"{app_id!r} must not start or end with spaces or hold control characters"
            )
        name = self.string(item["name"], f"{path}.name", max_length=200) if "name" in item else None
        is_active = self.optional(item, "active", True, lambda v: self.boolean(v, f"{path}.active"))
        if len(self.errors) > errors_before or app_id is None or name is None:
            return None
        return AppSpec(app_id=app_id, name=name, is_active=is_active)

    def _template_part(self, item: Mapping[str, Any], key: str, path: str) -> str:
        """A text part; absent is empty. A bad value is recorded as an error (nothing is applied)."""
        if key not in item:
            return ""
        part = self.string(
            item[key], f"{path}.{key}", max_length=_TEMPLATE_MAX_LENGTHS[key], allow_empty=True
        )
        return "" if part is None else part

    def _template_content(self, template: TemplateSpec, path: str, kind: str) -> None:
        """The admin's checks (parts the kind needs, every part compiles), on an unsaved template of
        an unsaved channel of the file's kind: nothing is read or written."""
        candidate = MessageTemplate(
            channel=Channel(kind=kind),
            template_id=template.template_id,
            name=template.name,
            is_active=template.is_active,
            subject=template.subject,
            html_body=template.html_body,
            text_body=template.text_body,
            payload=template.payload,
            deep_link=template.deep_link,
        )
        for model_field, messages in template_content_errors(template=candidate).items():
            for message in messages:
                self.error(f"{path}.{TEMPLATE_FILE_KEYS.get(model_field, model_field)}", message)

    def _choice(self, value: Any, path: str, choices: tuple[str, ...]) -> str | None:
        if not isinstance(value, str) or value not in choices:
            shown = repr(value) if isinstance(value, str | int | float | bool) else _type_name(value)
            self.error(path, f"{shown} is not one of {', '.join(choices)}")
            return None
        return value

    def _event_type(self, value: Any, path: str) -> int | None:
        if isinstance(value, bool) or value not in SCHEDULED_EVENT_TYPES:
            shown = repr(value) if isinstance(value, str | int | float | bool) else _type_name(value)
            self.error(path, f"{shown} is not one of {', '.join(map(str, SCHEDULED_EVENT_TYPES))}")
            return None
        return int(value)

    def _provider(self, value: Any, path: str) -> str | None:
        provider = self.string(value, path, max_length=64)
        if provider is not None and not _PROVIDER.match(provider):
            self.error(path, f"{provider!r} may hold letters, digits, _ . : and - only")
            return None
        return provider

    def _address_attribute(self, value: Any, path: str) -> str | None:
        attribute = self.string(value, path, max_length=100, allow_empty=True)
        if attribute is not None and not _ADDRESS_ATTRIBUTE.match(attribute):
            self.error(path, f"{attribute!r} may hold letters, digits, _ . and - only")
            return None
        return attribute

    def _consent_attribute(self, value: Any, path: str) -> str | None:
        attribute = self.string(value, path, max_length=100, allow_empty=True)
        if attribute is not None and not _CONSENT_ATTRIBUTE.match(attribute):
            self.error(path, f"{attribute!r} may hold letters, digits and _ only")
            return None
        return attribute

    def _json_object(self, value: Any, path: str) -> dict[str, Any] | None:
        if not isinstance(value, Mapping):
            self.error(path, f"expected a mapping, got {_type_name(value)}")
            return None
        errors_before = len(self.errors)
        self._check_json(value, path)
        return dict(value) if len(self.errors) == errors_before else None

    def _check_json(self, value: Any, path: str) -> None:
        # YAML turns 2024-05-01 into a date and allows non-string keys; the column holds JSON only, and
        # PostgreSQL's JSON refuses NaN, Infinity, NUL characters and unpaired surrogates. Walked
        # without recursion, and capped (see MAX_JSON_DEPTH), so no file can exhaust the stack or time.
        pending: list[tuple[Any, str, int]] = [(value, path, 0)]
        visited = 0
        while pending:
            item, where, depth = pending.pop()
            visited += 1
            if visited > MAX_JSON_VALUES:
                self.error(path, f"holds more than {MAX_JSON_VALUES} values")
                return
            if depth > MAX_JSON_DEPTH:
                self.error(path, f"is nested more than {MAX_JSON_DEPTH} levels deep")
                return
            if isinstance(item, Mapping):
                children = []
                for key, inner in item.items():
                    if not isinstance(key, str):
                        self.error(where, f"key {key!r} must be a string")
                    elif problem := text_unstorable(key):
                        self.error(where, f"a key {problem}")
                    else:
                        children.append((inner, f"{where}.{_key_shown(key)}", depth + 1))
                pending += reversed(children)  # popped in the file's order, so errors read in order
            elif isinstance(item, list):
                pending += reversed(
                    [(inner, f"{where}[{index}]", depth + 1) for index, inner in enumerate(item)]
                )
            elif isinstance(item, str):
                if problem := text_unstorable(item):
                    self.error(where, problem)
            elif isinstance(item, float) and not math.isfinite(item):
                shown = "NaN" if math.isnan(item) else "Infinity" if item > 0 else "-Infinity"
                self.error(where, f"{shown} is not a JSON number")
            elif not isinstance(item, int | float | bool) and item is not None:
                self.error(where, f"{_type_name(item)} is not a JSON value (quote it)")

    def _provider_secrets(self, value: Any, path: str) -> dict[str, str | None] | None:
        if not isinstance(value, Mapping):
            self.error(path, f"expected a mapping, got {_type_name(value)}")
            return None
        secrets: dict[str, str | None] = {}
        ok = True
        for key, raw in value.items():
            if not isinstance(key, str) or not key:
                self.error(path, f"key {key!r} must be a non-empty string")
                ok = False
                continue
            if problem := text_unstorable(key):
                self.error(path, f"a key {problem}")
                ok = False
                continue
            if raw is None:
                secrets[key] = None
                continue
            resolved = self.secret(raw, f"{path}.{key}")
            if resolved is None:
                ok = False
                continue
            secrets[key] = resolved
        return secrets if ok else None


# The top-level sections of a client file. A new section is added here and read by its own method;
# the strict check above then accepts it and still rejects anything undeclared. Templates are not a
# section of their own: they belong to a channel and are listed under it.
CLIENT_REQUIRED_SECTIONS: tuple[str, ...] = ("slug", "name", "optimove")
CLIENT_OPTIONAL_SECTIONS: tuple[str, ...] = ("active", "personal_data_retention_days", "channels")

# A template's keys besides template_id and name. `sample_attributes` (the admin's preview data) is
# deliberately not part of the file.
TEMPLATE_OPTIONAL_KEYS: tuple[str, ...] = (
    "active",
    "subject",
    "html_body",
    "text_body",
    "payload",
    "deep_link",
)
# Model field -> file key, where they differ.
TEMPLATE_FILE_KEYS: dict[str, str] = {"is_active": "active"}
# The model's column limits; the bodies are text columns, bounded by TEMPLATE_MAX_OUTPUT_BYTES, which
# template_content_errors checks.
_TEMPLATE_MAX_LENGTHS: dict[str, int | None] = {
    "subject": 1000,
    "html_body": None,
    "text_body": None,
    "deep_link": 2000,
}
