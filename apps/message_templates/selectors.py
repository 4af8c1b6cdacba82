"""Reads of message templates."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Field

from apps.clients.models import Channel
from apps.core.rows import instance_from_row, model_fields, select_list
from apps.message_templates.models import MessageTemplate


@cache
def _templates_query() -> tuple[list[Field[Any, Any]], str]:
    """Plain SQL (apps.core.rows): this runs once per send batch."""
    fields = model_fields(MessageTemplate)
    sql = (
        f"SELECT {select_list(fields, 't')} FROM {MessageTemplate._meta.db_table} t "  # noqa: S608
        "WHERE t.channel_id = %s AND t.template_id = ANY(%s)"
    )
    return fields, sql


def template_map_for_channel(
    *, channel: Channel, template_ids: Iterable[int], active_only: bool = True
) -> dict[int, MessageTemplate]:
    """The channel's templates by TemplateID, with the channel loaded (rendering reads its kind).

    IDs with no (active) template are simply absent: the caller decides what a missing one means.
    """
    ids = sorted(set(template_ids))
    if not ids:
        return {}
    fields, sql = _templates_query()
    if active_only:
        sql += " AND t.is_active"
    with connection.cursor() as cursor:
        cursor.execute(sql, [channel.pk, ids])
        rows = cursor.fetchall()
    found = {}
    for row in rows:
        template = instance_from_row(MessageTemplate, fields, row)
        template.channel = channel  # the caller's instance: no join, no second decryption of its secrets
        found[template.template_id] = template
    return found
