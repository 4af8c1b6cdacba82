"""Writes to clients and channels: applying a client file (with the channels' message templates and
push apps), exporting one, saving and deleting a channel, the listener token, and re-encrypting every
stored secret under the newest key."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps as django_apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import F, TextField, Value
from django.db.models.deletion import ProtectedError, RestrictedError
from django.db.models.functions import Cast

from apps.clients import crypto
from apps.clients.apply_schema import (
    KEEP,
    AppSpec,
    ChannelSpec,
    ClientFileError,
    ClientSpec,
    SecretUpdate,
    TemplateSpec,
    parse_client_document,
)
from apps.clients.fields import EncryptedJSONField, EncryptedTextField
from apps.clients.models import Channel, ChannelKind, Client, PushApp, new_listener_token
from apps.clients.push_apps import push_app_delete, push_app_upsert
from apps.message_templates.models import MessageTemplate
from apps.message_templates.services import template_delete, template_upsert
from apps.message_templates.sync import outbox_channel_moved

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------
# client_apply
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    """One changed field, already safe to print: secrets say only set/changed/removed."""

    field: str
    summary: str

    def __str__(self) -> str:
        return f"{self.field}: {self.summary}"


@dataclass(frozen=True)
class ObjectChange:
    label: str  # `client acme`, `channel 504 "Email"`, `channel 504 template 14 "Spring welcome"`
    action: Literal["created", "updated", "deleted", "kept"]
    fields: tuple[FieldChange, ...] = ()

    def lines(self) -> list[str]:
        if self.action == "kept":
            return [f"{self.label}: not in the file, kept (--prune deletes it)"]
        return [f"{self.label}: {self.action}", *(f"  {change}" for change in self.fields)]


@dataclass(frozen=True)
class ApplyResult:
    slug: str
    created: bool
    dry_run: bool
    objects: tuple[ObjectChange, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return any(obj.action != "kept" for obj in self.objects)

    def lines(self) -> list[str]:
        lines = [line for obj in self.objects if obj.action != "kept" for line in obj.lines()]
        if not lines:
            lines = [f"client {self.slug}: no changes"]
        lines += [line for obj in self.objects if obj.action == "kept" for line in obj.lines()]
        lines += [f"warning: {warning}" for warning in self.warnings]
        if self.dry_run:
            lines.append("dry run: nothing was saved")
        return lines


def _show(value: Any) -> str:
    """A value as the file would write it (JSON spelling: "text", true, null, {"a": 1})."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _same_secret(stored: str, new: str) -> bool:
    return hmac.compare_digest(stored.encode("utf-8"), new.encode("utf-8"))


# (file name, model attribute) of every non-secret field, in the file's order.
_CLIENT_FIELDS: tuple[tuple[str, str], ...] = (
    ("name", "name"),
    ("active", "is_active"),
    ("personal_data_retention_days", "personal_data_retention_days"),
    ("optimove.base_url", "optimove_base_url"),
    ("optimove.username", "optimove_username"),
)
_CLIENT_SECRETS: tuple[tuple[str, str], ...] = (
    ("optimove.api_key", "optimove_api_key"),
    ("optimove.password", "optimove_password"),
)
_CHANNEL_FIELDS: tuple[tuple[str, str], ...] = (
    ("name", "name"),
    ("kind", "kind"),
    ("provider", "provider"),
    ("provider_options", "provider_options"),
    ("address_attribute", "address_attribute"),
    ("rate_limit_per_second", "rate_limit_per_second"),
    ("realtime", "is_realtime"),
    ("scheduled_event_type", "scheduled_event_type"),
    ("active", "is_active"),
    ("consent_sync", "consent_sync"),
    ("consent_attribute", "consent_attribute"),
)
# (file name, model attribute) of a template's fields besides template_id. `sample_attributes` is the
# admin's preview data, not part of the file, and is never touched by an apply.
_TEMPLATE_FIELDS: tuple[tuple[str, str], ...] = (
    ("name", "name"),
    ("active", "is_active"),
    ("subject", "subject"),
    ("html_body", "html_body"),
    ("text_body", "text_body"),
    ("payload", "payload"),
    ("deep_link", "deep_link"),
)
# A template value whose JSON spelling is longer than this is reported as set/changed/removed, not
# printed: an HTML body in the change list would bury everything else.
_SHOWN_MAX_CHARS = 60


def client_apply(*, document: Mapping[str, Any], prune: bool = False, dry_run: bool = False) -> ApplyResult:
    """Makes the database match a client file (see `apply_schema` for the format).

    Everything is validated before the first write and the whole apply is one transaction. Only
    fields whose values differ are written, so applying the same file twice writes nothing the second
    time. Secrets absent from the file keep their stored values; channels absent from the file are
    kept unless `prune`, and so are templates absent from a channel's `templates:` list (a channel
    entry without that key leaves its templates alone, even with `prune`). Every template write goes
    through `message_templates.services`. With `dry_run` the changes are computed, reported and
    rolled back.
    Raises ClientFileError for a file that cannot be applied.
    """
    spec = parse_client_document(document=document)
    try:
        result = _client_apply(spec, prune=prune, dry_run=dry_run)
    except IntegrityError as exc:
        # A unique violation after validation means a concurrent apply created the same client or
        # channel first; anything else is a bug to see in full.
        if getattr(exc.__cause__, "sqlstate", None) != "23505":
            raise
        raise ClientFileError(
            [f"slug: client {spec.slug!r} was changed by someone else at the same moment; apply again"]
        ) from None
    # Field names only: values (and certainly secrets) stay out of the logs.
    logger.info(
        "client_apply %s: %s",
        spec.slug,
        "; ".join(
            f"{obj.label} {obj.action}"
            + (f" ({', '.join(c.field for c in obj.fields)})" if obj.fields else "")
            for obj in result.objects
        )
        or "no changes",
        extra={"client": spec.slug, "dry_run": dry_run},
    )
    return result


def _client_apply(spec: ClientSpec, *, prune: bool, dry_run: bool) -> ApplyResult:
    with transaction.atomic():
        client = Client.objects.select_for_update().filter(slug=spec.slug).first()
        objects: list[ObjectChange] = []
        change: ObjectChange | None
        created = client is None
        if client is None:
            client, change = _client_create(spec)
            existing: dict[int, Channel] = {}
        else:
            change = _client_update(client, spec)
            existing = {
                channel.optimove_channel_id: channel
                for channel in Channel.objects.select_for_update().filter(client=client)
            }
        if change is not None:
            objects.append(change)
        for index, channel_spec in enumerate(spec.channels):
            channel = existing.pop(channel_spec.channel_id, None)
            channel_created = channel is None
            kind_before = None if channel is None else channel.kind
            channel_change: ObjectChange | None
            if channel is None:
                channel, channel_change = _channel_create(client, channel_spec)
            else:
                channel_change = _channel_update(channel, channel_spec)
            if channel_change is not None:
                objects.append(channel_change)
            if channel_spec.templates is not None:
                objects += _templates_apply(
                    channel,
                    channel_spec.templates,
                    path=f"channels[{index}].templates",
                    stored_too=not channel_created,
                    prune=prune,
                )
            if kind_before is not None and kind_before != channel.kind:
                _templates_suit_new_kind(channel, path=f"channels[{index}].kind")
            if channel_spec.apps is not None:
                objects += _apps_apply(
                    channel,
                    channel_spec.apps,
                    path=f"channels[{index}].apps",
                    stored_too=not channel_created,
                    prune=prune,
                )
        for channel in sorted(existing.values(), key=lambda c: c.optimove_channel_id):
            label = _channel_label(channel.optimove_channel_id, channel.name)
            if prune:
                # Through template_delete and push_app_delete, not the channel's cascade, so each
                # deletion reaches Optimove through the outbox like any other.
                deleted = _templates_delete_all(channel) + _apps_delete_all(channel)
                _channel_delete(channel, label)
                objects.append(ObjectChange(label, "deleted"))
                objects += deleted
            else:
                objects.append(ObjectChange(label, "kept"))
        warnings: list[str] = []
        if not client.optimove_api_key and not client.optimove_password:
            warnings.append(
                f"client {spec.slug} has no Optimove credentials: set optimove.api_key "
                "(or optimove.username and optimove.password)"
            )
        elif client.optimove_password and not client.optimove_api_key and not client.optimove_username:
            warnings.append(f"client {spec.slug} has a stored password but no optimove.username")
        result = ApplyResult(
            slug=spec.slug, created=created, dry_run=dry_run, objects=tuple(objects), warnings=tuple(warnings)
        )
        if dry_run:
            transaction.set_rollback(True)
    return result


def _client_create(spec: ClientSpec) -> tuple[Client, ObjectChange]:
    client = Client(
        slug=spec.slug,
        name=spec.name,
        is_active=spec.is_active,
        personal_data_retention_days=spec.personal_data_retention_days,
        optimove_base_url=spec.optimove_base_url,
        optimove_username=spec.optimove_username,
        optimove_api_key=spec.optimove_api_key if isinstance(spec.optimove_api_key, str) else "",
        optimove_password=spec.optimove_password if isinstance(spec.optimove_password, str) else "",
    )
    client.save()
    fields = [FieldChange(name, _show(getattr(client, attr))) for name, attr in _CLIENT_FIELDS]
    fields += [
        FieldChange(name, "set") for name, attr in _CLIENT_SECRETS if isinstance(getattr(spec, attr), str)
    ]
    return client, ObjectChange(f"client {spec.slug}", "created", tuple(fields))


def _client_update(client: Client, spec: ClientSpec) -> ObjectChange | None:
    changes: list[FieldChange] = []
    update_fields: list[str] = []
    for name, attr in _CLIENT_FIELDS:
        old, new = getattr(client, attr), getattr(spec, attr)
        if old != new:
            changes.append(FieldChange(name, f"{_show(old)} -> {_show(new)}"))
            setattr(client, attr, new)
            update_fields.append(attr)
    for name, attr in _CLIENT_SECRETS:
        summary = _secret_change(getattr(client, attr), getattr(spec, attr))
        if summary is not None:
            changes.append(FieldChange(name, summary))
            setattr(client, attr, getattr(spec, attr) or "")
            update_fields.append(attr)
    if not update_fields:
        return None
    client.save(update_fields=[*update_fields, "updated_at"])
    return ObjectChange(f"client {client.slug}", "updated", tuple(changes))


def _secret_change(stored: str, update: SecretUpdate) -> str | None:
    """How a stored secret changes (`set`, `changed`, `removed`), or None when it stays."""
    if update is KEEP:
        return None
    if update is None:
        return "removed" if stored else None
    if not stored:
        return "set"
    return None if _same_secret(stored, update) else "changed"


def _channel_label(channel_id: int, name: str) -> str:
    return f"channel {channel_id} {_show(name)}"


def _channel_create(client: Client, spec: ChannelSpec) -> tuple[Channel, ObjectChange]:
    secrets = {key: value for key, value in spec.provider_secrets.items() if value is not None}
    channel = Channel(
        client=client,
        optimove_channel_id=spec.channel_id,
        name=spec.name,
        kind=spec.kind,
        provider=spec.provider,
        provider_options=dict(spec.provider_options),
        provider_secrets=secrets,
        address_attribute=spec.address_attribute,
        rate_limit_per_second=spec.rate_limit_per_second,
        is_realtime=spec.is_realtime,
        scheduled_event_type=spec.scheduled_event_type,
        is_active=spec.is_active,
        consent_sync=spec.consent_sync,
        consent_attribute=spec.consent_attribute,
    )
    channel.save()
    fields = [FieldChange(name, _show(getattr(channel, attr))) for name, attr in _CHANNEL_FIELDS]
    fields += [FieldChange(f"provider_secrets.{key}", "set") for key in sorted(secrets)]
    return channel, ObjectChange(_channel_label(spec.channel_id, spec.name), "created", tuple(fields))


def _channel_update(channel: Channel, spec: ChannelSpec) -> ObjectChange | None:
    label = _channel_label(spec.channel_id, channel.name)
    changes: list[FieldChange] = []
    update_fields: list[str] = []
    for name, attr in _CHANNEL_FIELDS:
        old = getattr(channel, attr)
        new = dict(spec.provider_options) if attr == "provider_options" else getattr(spec, attr)
        changed = not _same_value(old, new) if attr == "provider_options" else old != new
        if changed:
            changes.append(FieldChange(name, f"{_show(old)} -> {_show(new)}"))
            setattr(channel, attr, new)
            update_fields.append(attr)
    stored: dict[str, str] = dict(channel.provider_secrets or {})
    merged = dict(stored)
    for key, value in sorted(spec.provider_secrets.items()):
        if value is None:
            if key in merged:
                del merged[key]
                changes.append(FieldChange(f"provider_secrets.{key}", "removed"))
            continue
        summary = _secret_change(stored.get(key, ""), value)
        if summary is not None:
            merged[key] = value
            changes.append(FieldChange(f"provider_secrets.{key}", summary))
    if merged != stored:
        channel.provider_secrets = merged
        update_fields.append("provider_secrets")
    if not update_fields:
        return None
    channel.save(update_fields=[*update_fields, "updated_at"])
    return ObjectChange(label, "updated", tuple(changes))


def _channel_delete(channel: Channel, label: str) -> None:
    try:
        channel.delete()
        return
    except ProtectedError as exc:
        blocking = exc.protected_objects
    except RestrictedError as exc:
        blocking = exc.restricted_objects
    kinds = sorted({str(obj._meta.verbose_name_plural) for obj in blocking})
    raise ClientFileError(
        [f"channels: {label} cannot be deleted by --prune: it still has {', '.join(kinds)}"]
    )


def _template_label(channel_id: int, template_id: int, name: str) -> str:
    return f"channel {channel_id} template {template_id} {_show(name)}"


def _templates_apply(
    channel: Channel,
    templates: tuple[TemplateSpec, ...],
    *,
    path: str,
    stored_too: bool,
    prune: bool,
) -> list[ObjectChange]:
    """Makes the channel's templates match its `templates:` list; `path` names the list in errors."""
    stored: dict[int, MessageTemplate] = {}
    if stored_too:  # a channel created a moment ago has none to read
        stored = {
            template.template_id: template
            for template in MessageTemplate.objects.select_for_update().filter(channel=channel)
        }
    objects: list[ObjectChange] = []
    for index, spec in enumerate(templates):
        template = stored.pop(spec.template_id, None)
        if template is None:
            fields = [
                FieldChange(name, _template_value_shown(attr, getattr(spec, attr)))
                for name, attr in _TEMPLATE_FIELDS
                if attr in ("name", "is_active") or not _is_blank(getattr(spec, attr))
            ]
            _template_upsert(channel, spec, f"{path}[{index}]")
            label = _template_label(channel.optimove_channel_id, spec.template_id, spec.name)
            objects.append(ObjectChange(label, "created", tuple(fields)))
            continue
        changes = [
            FieldChange(name, _template_change_shown(attr, getattr(template, attr), getattr(spec, attr)))
            for name, attr in _TEMPLATE_FIELDS
            if not _same_value(getattr(template, attr), getattr(spec, attr))
        ]
        if changes:
            _template_upsert(channel, spec, f"{path}[{index}]")
            label = _template_label(channel.optimove_channel_id, spec.template_id, template.name)
            objects.append(ObjectChange(label, "updated", tuple(changes)))
    for template in sorted(stored.values(), key=lambda t: t.template_id):
        label = _template_label(channel.optimove_channel_id, template.template_id, template.name)
        if prune:
            template_delete(template=template)
            objects.append(ObjectChange(label, "deleted"))
        else:
            objects.append(ObjectChange(label, "kept"))
    return objects


def _templates_suit_new_kind(channel: Channel, *, path: str) -> None:
    """A channel whose kind changed keeps only templates that suit the new kind: the templates the file
    left as they were (or did not list) are checked too, and any that do not fit refuse the apply."""
    from apps.message_templates.validation import template_content_errors

    problems = []
    for template in MessageTemplate.objects.filter(channel=channel).order_by("template_id"):
        template.channel = channel
        for messages in template_content_errors(template=template).values():
            problems += [
                f"{path}: template {template.template_id} does not suit kind {channel.kind}: {message}"
                for message in messages
            ]
    if problems:
        raise ClientFileError(problems)


def _template_upsert(channel: Channel, spec: TemplateSpec, path: str) -> None:
    try:
        template_upsert(
            channel=channel,
            template_id=spec.template_id,
            name=spec.name,
            is_active=spec.is_active,
            subject=spec.subject,
            html_body=spec.html_body,
            text_body=spec.text_body,
            payload=spec.payload,
            deep_link=spec.deep_link,
        )
    except ValidationError as exc:
        # The file was checked with the same rules before the first write, so this is not expected;
        # should it happen, it still names the template, and the whole apply is rolled back.
        names = {attr: name for name, attr in _TEMPLATE_FIELDS}
        problems = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        raise ClientFileError(
            [
                f"{path}{'' if field == '__all__' else '.' + names.get(field, field)}: {message}"
                for field, messages in problems.items()
                for message in messages
            ]
        ) from None


def _templates_delete_all(channel: Channel) -> list[ObjectChange]:
    deleted = []
    for template in (
        MessageTemplate.objects.select_for_update().filter(channel=channel).order_by("template_id")
    ):
        template_delete(template=template)
        label = _template_label(channel.optimove_channel_id, template.template_id, template.name)
        deleted.append(ObjectChange(label, "deleted"))
    return deleted


def _app_label(channel_id: int, app_id: str, name: str) -> str:
    return f"channel {channel_id} app {_show(app_id)} {_show(name)}"


# (file name, model attribute) of an app's fields besides app_id.
_APP_FIELDS: tuple[tuple[str, str], ...] = (("name", "name"), ("active", "is_active"))


def _apps_apply(
    channel: Channel, apps: tuple[AppSpec, ...], *, path: str, stored_too: bool, prune: bool
) -> list[ObjectChange]:
    """Makes the push channel's apps match its `apps:` list; as `_templates_apply` for templates."""
    stored: dict[str, PushApp] = {}
    if stored_too:
        stored = {app.app_id: app for app in PushApp.objects.select_for_update().filter(channel=channel)}
    objects: list[ObjectChange] = []
    for index, spec in enumerate(apps):
        app = stored.pop(spec.app_id, None)
        label = _app_label(channel.optimove_channel_id, spec.app_id, spec.name if app is None else app.name)
        if app is None:
            changes = [FieldChange(name, _show(getattr(spec, attr))) for name, attr in _APP_FIELDS]
            action: Literal["created", "updated"] = "created"
        else:
            changes = [
                FieldChange(name, f"{_show(getattr(app, attr))} -> {_show(getattr(spec, attr))}")
                for name, attr in _APP_FIELDS
                if getattr(app, attr) != getattr(spec, attr)
            ]
            action = "updated"
            if not changes:
                continue
        try:
            push_app_upsert(channel=channel, app_id=spec.app_id, name=spec.name, is_active=spec.is_active)
        except ValidationError as exc:
            # Checked before the first write, so not expected; the whole apply is rolled back.
            problems = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
            raise ClientFileError(
                [
                    f"{path}[{index}]{'' if field == '__all__' else '.' + field}: {message}"
                    for field, messages in problems.items()
                    for message in messages
                ]
            ) from None
        objects.append(ObjectChange(label, action, tuple(changes)))
    for app in sorted(stored.values(), key=lambda a: a.app_id):
        label = _app_label(channel.optimove_channel_id, app.app_id, app.name)
        if prune:
            push_app_delete(app=app)
            objects.append(ObjectChange(label, "deleted"))
        else:
            objects.append(ObjectChange(label, "kept"))
    return objects


def _apps_delete_all(channel: Channel) -> list[ObjectChange]:
    deleted = []
    for app in PushApp.objects.select_for_update().filter(channel=channel).order_by("app_id"):
        push_app_delete(app=app)
        deleted.append(ObjectChange(_app_label(channel.optimove_channel_id, app.app_id, app.name), "deleted"))
    return deleted


def _is_blank(value: Any) -> bool:
    return value is None or value == ""


def _same_value(stored: Any, new: Any) -> bool:
    """Equal as JSON values: `true` is not `1` (Python says it is), while `1` and `1.0` are the same
    number however the database hands it back, so a re-apply never rewrites an unchanged payload."""
    if isinstance(stored, bool) or isinstance(new, bool):
        return type(stored) is type(new) and stored == new
    if isinstance(stored, int | float) and isinstance(new, int | float):
        # As the decimals the JSON column holds: 1.189254040210163e+17 is written (and stored) as that
        # decimal, which reads back as the integer 118925404021016300, not the float's binary value.
        return _json_number(stored) == _json_number(new)
    if isinstance(stored, dict) and isinstance(new, dict):
        return stored.keys() == new.keys() and all(_same_value(stored[k], new[k]) for k in stored)
    if isinstance(stored, list) and isinstance(new, list):
        return len(stored) == len(new) and all(_same_value(a, b) for a, b in zip(stored, new, strict=True))
    return type(stored) is type(new) and stored == new


def _json_number(value: int | float) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _template_value_shown(attr: str, value: Any) -> str:
    shown = _show(value)
    return shown if attr == "name" or len(shown) <= _SHOWN_MAX_CHARS else "set"


def _template_change_shown(attr: str, old: Any, new: Any) -> str:
    old_shown, new_shown = _show(old), _show(new)
    if attr == "name" or (len(old_shown) <= _SHOWN_MAX_CHARS and len(new_shown) <= _SHOWN_MAX_CHARS):
        return f"{old_shown} -> {new_shown}"
    if _is_blank(old):
        return "set"
    return "removed" if _is_blank(new) else "changed"


# ---------------------------------------------------------------------------------------------------
# client_export
# ---------------------------------------------------------------------------------------------------


def client_export(*, client: Client) -> dict[str, Any]:
    """The client as a client file, without any secret: applying it changes nothing.

    Every channel carries its whole `templates:` list (empty when it has none), and every push channel
    its whole `apps:` list, so the export is authoritative for them too. The templates'
    `sample_attributes` (preview data) are left out.
    """
    optimove: dict[str, Any] = {"base_url": client.optimove_base_url}
    if client.optimove_username:
        optimove["username"] = client.optimove_username
    templates: dict[int, list[dict[str, Any]]] = {}
    for template in MessageTemplate.objects.filter(client=client).order_by("channel_id", "template_id"):
        templates.setdefault(template.channel_id, []).append(
            {
                "template_id": template.template_id,
                "name": template.name,
                "active": template.is_active,
                "subject": template.subject,
                "html_body": template.html_body,
                "text_body": template.text_body,
                "payload": template.payload,
                "deep_link": template.deep_link,
            }
        )
    apps: dict[int, list[dict[str, Any]]] = {}
    for app in PushApp.objects.filter(channel__client=client).order_by("channel_id", "app_id"):
        apps.setdefault(app.channel_id, []).append(
            {"app_id": app.app_id, "name": app.name, "active": app.is_active}
        )
    channels = [
        {
            "channel_id": channel.optimove_channel_id,
            "name": channel.name,
            "kind": channel.kind,
            "provider": channel.provider,
            "provider_options": channel.provider_options or {},
            "address_attribute": channel.address_attribute,
            "rate_limit_per_second": channel.rate_limit_per_second,
            "realtime": channel.is_realtime,
            "scheduled_event_type": channel.scheduled_event_type,
            "active": channel.is_active,
            "consent_sync": channel.consent_sync,
            "consent_attribute": channel.consent_attribute,
            "templates": templates.get(channel.pk, []),
            **({"apps": apps.get(channel.pk, [])} if channel.kind == ChannelKind.PUSH else {}),
        }
        for channel in Channel.objects.filter(client=client).order_by("optimove_channel_id")
    ]
    return {
        "slug": client.slug,
        "name": client.name,
        "active": client.is_active,
        "personal_data_retention_days": client.personal_data_retention_days,
        "optimove": optimove,
        "channels": channels,
    }


# ---------------------------------------------------------------------------------------------------
# channels
# ---------------------------------------------------------------------------------------------------


def channel_save(*, channel: Channel) -> None:
    """Saves a channel (new or changed, as the admin's forms fill it in).

    A channel that answers to another Optimove ChannelID (or client) afterwards takes its listed
    templates and apps along: the outbox deletes them from the old list and adds them to the new one,
    in the same transaction.
    """
    with transaction.atomic():
        old = None
        if channel.pk is not None:
            old = (
                Channel.objects.select_for_update()
                .filter(pk=channel.pk)
                .values_list("client_id", "optimove_channel_id")
                .first()
            )
        channel.save()
        if old is not None:
            outbox_channel_moved(channel=channel, old_client_id=old[0], old_optimove_channel_id=old[1])


def channel_delete(*, channel: Channel) -> None:
    """Deletes a channel. Its templates and apps go first, through their services, so Optimove hears
    that they are gone (the outbox rows outlive the channel: they name it by ChannelID)."""
    with transaction.atomic():
        _templates_delete_all(channel)
        _apps_delete_all(channel)
        channel.delete()


# ---------------------------------------------------------------------------------------------------
# listener token
# ---------------------------------------------------------------------------------------------------


def client_listener_token_regenerate(*, client: Client) -> None:
    """Gives the client a new listener token; URLs registered with the old one stop working."""
    client.listener_token = new_listener_token()
    client.save(update_fields=["listener_token", "updated_at"])
    logger.info("listener token regenerated for client %s", client.slug, extra={"client": client.slug})


# ---------------------------------------------------------------------------------------------------
# secrets_rotate
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RotationReport:
    model: str  # app_label.ModelName
    fields: tuple[str, ...]
    rows: int
    rotated: int  # values re-encrypted with the newest key
    current: int  # values already under the newest key, left alone
    unreadable: tuple[str, ...]  # `pk=3 optimove_api_key`: no configured key opens them

    def __str__(self) -> str:
        line = (
            f"{self.model} ({', '.join(self.fields)}): {self.rows} rows, {self.rotated} values re-encrypted, "
            f"{self.current} already current"
        )
        if self.unreadable:
            line += f", {len(self.unreadable)} unreadable ({'; '.join(self.unreadable)})"
        return line


def encrypted_fields() -> Iterator[tuple[type[models.Model], list[models.Field[Any, Any]]]]:
    """Every installed model with encrypted columns in its own table, and those fields."""
    for model in django_apps.get_models():
        if model._meta.proxy:
            continue
        found: list[models.Field[Any, Any]] = [
            f
            for f in model._meta.local_concrete_fields
            if isinstance(f, EncryptedTextField | EncryptedJSONField)
        ]
        if found:
            yield model, found


def secrets_rotate(*, batch_size: int = 500) -> list[RotationReport]:
    """Re-encrypts every stored secret with the newest key in FIELD_ENCRYPTION_KEYS.

    Values already under the newest key are not rewritten, so running it twice is harmless and the
    second run reports nothing re-encrypted. Each batch is one transaction that locks its rows, so a
    concurrent save is neither lost nor overwritten with an older value. `updated_at` is not touched:
    the data did not change.
    """
    newest = Fernet(settings.FIELD_ENCRYPTION_KEYS[0].encode())
    every_key = crypto.fernet()
    reports: list[RotationReport] = []
    for model, fields in encrypted_fields():
        manager = model._base_manager
        aliases = {f"rotate_raw_{i}": f for i, f in enumerate(fields)}
        # Cast to plain text so the stored token is read as is, not decrypted by the field.
        raw = {alias: Cast(F(f.attname), output_field=TextField()) for alias, f in aliases.items()}
        rows = rotated = current = 0
        unreadable: list[str] = []
        last_pk: Any = None
        while True:
            with transaction.atomic():
                queryset = manager.order_by("pk")
                if last_pk is not None:
                    queryset = queryset.filter(pk__gt=last_pk)
                batch = list(
                    queryset.select_for_update().annotate(**raw).values_list("pk", *aliases)[:batch_size]
                )
                for pk, *tokens in batch:
                    updates: dict[str, Value] = {}
                    for (_alias, f), token in zip(aliases.items(), tokens, strict=True):
                        if not token:
                            continue
                        try:
                            newest.decrypt(token.encode("ascii"))
                            current += 1
                            continue
                        except InvalidToken:
                            pass
                        try:
                            fresh = every_key.rotate(token.encode("ascii")).decode("ascii")
                        except InvalidToken:
                            unreadable.append(f"pk={pk} {f.name}")
                            continue
                        # A Value with a plain TextField output is written as is, not encrypted again.
                        updates[f.attname] = Value(fresh, output_field=TextField())
                    if updates:
                        manager.filter(pk=pk).update(**updates)
                        rotated += len(updates)
            rows += len(batch)
            if len(batch) < batch_size:
                break
            last_pk = batch[-1][0]
        report = RotationReport(
            model=model._meta.label,
            fields=tuple(f.name for f in fields),
            rows=rows,
            rotated=rotated,
            current=current,
            unreadable=tuple(unreadable),
        )
        logger.info("secrets_rotate: %s", report)
        reports.append(report)
    return reports
