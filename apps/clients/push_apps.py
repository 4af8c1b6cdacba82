"""Every write to push apps goes through here.

Each write that changes what Optimove lists (an app added or deleted, renamed, switched off or on)
records an outbox row in the same transaction; a task pushes it (`AddChannelApps` /
`DeleteChannelApps`) after commit, see `apps.message_templates.sync`.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps.clients.models import Channel, PushApp
from apps.message_templates.models import OutboxKind
from apps.message_templates.sync import outbox_record_change


def push_app_upsert(
    *, channel: Channel, app_id: str, name: str, is_active: bool = True
) -> tuple[PushApp, bool]:
    """Creates or updates the channel's app `app_id`; returns it and whether it was created.

    Raises django's ValidationError, naming each problem and saving nothing, when the channel is not
    a push channel, or the AppID or name is empty, too long or padded with spaces.
    """
    try:
        with transaction.atomic():
            return _upsert(channel=channel, app_id=app_id, name=name, is_active=is_active)
    except IntegrityError:
        # Created by someone else between our read and our insert: it exists now, so update it.
        with transaction.atomic():
            return _upsert(channel=channel, app_id=app_id, name=name, is_active=is_active)


def _upsert(*, channel: Channel, app_id: str, name: str, is_active: bool) -> tuple[PushApp, bool]:
    app = PushApp.objects.select_for_update().filter(channel=channel, app_id=app_id).first()
    created = app is None
    before = None if app is None else _listed_as(app)
    if app is None:
        app = PushApp(channel=channel, app_id=app_id)
    app.name = name
    app.is_active = is_active
    # The channel's own field check would only repeat, less clearly, what clean() says about its kind.
    app.full_clean(exclude=["channel"], validate_constraints=False)
    app.save()
    outbox_record_change(
        client_id=channel.client_id,
        optimove_channel_id=channel.optimove_channel_id,
        kind=OutboxKind.APP,
        key=app.app_id,
        before=before,
        after=_listed_as(app),
    )
    return app, created


def push_app_delete(*, app: PushApp) -> None:
    """Deletes the app; Optimove hears of it unless it was inactive (and so not listed) already."""
    with transaction.atomic():
        stored = PushApp.objects.select_for_update().select_related("channel").filter(pk=app.pk).first()
        if stored is None:
            return
        outbox_record_change(
            client_id=stored.channel.client_id,
            optimove_channel_id=stored.channel.optimove_channel_id,
            kind=OutboxKind.APP,
            key=stored.app_id,
            before=_listed_as(stored),
            after=None,
        )
        stored.delete()


def _listed_as(app: PushApp) -> str | None:
    return app.name if app.is_active else None
