"""Every write to message templates goes through here.

Each write that changes what Optimove lists (a template created or deleted, renamed, switched off or
on) records an outbox row in the same transaction; a task pushes it to Optimove
(`AddChannelTemplates` / `DeleteChannelTemplates`) after commit, see `sync.py`. Content edits change
nothing in Optimove and record nothing.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from apps.clients.models import Channel
from apps.message_templates.models import MessageTemplate, OutboxKind
from apps.message_templates.sync import outbox_record_again, outbox_record_change

# The fields template_upsert sets besides channel, template_id and name.
UPSERT_FIELDS: frozenset[str] = frozenset(
    {"is_active", "subject", "html_body", "text_body", "payload", "deep_link", "sample_attributes"}
)


def template_upsert(
    *, channel: Channel, template_id: int, name: str, **fields: Any
) -> tuple[MessageTemplate, bool]:
    """Creates or updates the channel's template `template_id`; returns it and whether it was created.

    Fields not given keep their current (or default) values. Raises django's ValidationError, naming
    each problem and saving nothing, if the template does not suit the channel's kind, does not
    compile, or has no name.
    """
    unknown = set(fields) - UPSERT_FIELDS
    if unknown:
        raise TypeError(f"template_upsert() got unexpected fields: {', '.join(sorted(unknown))}")
    try:
        with transaction.atomic():
            return _upsert(channel=channel, template_id=template_id, name=name, fields=fields)
    except IntegrityError:
        # Another request created the same (channel, template_id) between our read and our insert:
        # it exists now, so this becomes an update.
        with transaction.atomic():
            return _upsert(channel=channel, template_id=template_id, name=name, fields=fields)


def _upsert(
    *, channel: Channel, template_id: int, name: str, fields: dict[str, Any]
) -> tuple[MessageTemplate, bool]:
    template = (
        MessageTemplate.objects.select_for_update().filter(channel=channel, template_id=template_id).first()
    )
    created = template is None
    before = None if template is None else _listed_as(template)
    if template is None:
        template = MessageTemplate(client_id=channel.client_id, channel=channel, template_id=template_id)
    template.name = name
    for field, value in fields.items():
        setattr(template, field, value)
    # The template's own uniqueness check would race anyway; the constraint decides.
    template.full_clean(validate_constraints=False)
    template.save()
    # A rename is an add under the same TemplateID: Optimove's reference does not say what an add of a
    # listed TemplateID does, the sandbox renames it, and `optimove_sync_templates` shows any drift.
    outbox_record_change(
        client_id=channel.client_id,
        optimove_channel_id=channel.optimove_channel_id,
        kind=OutboxKind.TEMPLATE,
        key=str(template.template_id),
        before=before,
        after=_listed_as(template),
    )
    return template, created


def template_delete(*, template: MessageTemplate) -> None:
    """Deletes the template; Optimove hears of it unless it was inactive (and so not listed) already."""
    with transaction.atomic():
        stored = (
            MessageTemplate.objects.select_for_update()
            .select_related("channel")
            .filter(pk=template.pk)
            .first()
        )
        if stored is None:  # deleted meanwhile: that deletion told Optimove
            return
        outbox_record_change(
            client_id=stored.channel.client_id,
            optimove_channel_id=stored.channel.optimove_channel_id,
            kind=OutboxKind.TEMPLATE,
            key=str(stored.template_id),
            before=_listed_as(stored),
            after=None,
        )
        stored.delete()


def template_sync_again(*, template: MessageTemplate) -> None:
    """Pushes the template's state to Optimove once more: listed under its name when active, removed
    when not. For a push that failed for good (the admin shows why), once the cause is fixed."""
    with transaction.atomic():
        stored = (
            MessageTemplate.objects.select_for_update()
            .select_related("channel")
            .filter(pk=template.pk)
            .first()
        )
        if stored is None:
            return
        outbox_record_again(
            client_id=stored.channel.client_id,
            optimove_channel_id=stored.channel.optimove_channel_id,
            kind=OutboxKind.TEMPLATE,
            key=str(stored.template_id),
            listed_as=_listed_as(stored),
        )


def _listed_as(template: MessageTemplate) -> str | None:
    """The name Optimove lists the template under, or None: only active templates are listed."""
    return template.name if template.is_active else None
