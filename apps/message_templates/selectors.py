"""Reads of message templates."""

from __future__ import annotations

from collections.abc import Iterable

from apps.clients.models import Channel
from apps.message_templates.models import MessageTemplate


def template_map_for_channel(
    *, channel: Channel, template_ids: Iterable[int], active_only: bool = True
) -> dict[int, MessageTemplate]:
    """The channel's templates by TemplateID, with the channel loaded (rendering reads its kind).

    IDs with no (active) template are simply absent: the caller decides what a missing one means.
    """
    templates = MessageTemplate.objects.select_related("channel").filter(
        channel=channel, template_id__in=set(template_ids)
    )
    if active_only:
        templates = templates.filter(is_active=True)
    return {template.template_id: template for template in templates}
