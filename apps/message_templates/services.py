"""Every write to message templates goes through here.

Thin for now; the next step records an outbox row here, in the same transaction, to push each
create, rename and delete to Optimove (`AddChannelTemplates` / `DeleteChannelTemplates`).
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from apps.clients.models import Channel
from apps.message_templates.models import MessageTemplate

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
    if template is None:
        template = MessageTemplate(client_id=channel.client_id, channel=channel, template_id=template_id)
    template.name = name
    for field, value in fields.items():
        setattr(template, field, value)
    # The template's own uniqueness check would race anyway; the constraint decides.
    template.full_clean(validate_constraints=False)
    template.save()
    return template, created


def template_delete(*, template: MessageTemplate) -> None:
    with transaction.atomic():
        template.delete()
