"""`manage.py subscriptions_export SLUG --channel ID [--output FILE]`: exactly the channel's customers
as `customer_id,status` CSV, read through a server-side cursor (streamed, flat memory), and clear
errors for bad input."""

from __future__ import annotations

import csv
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.clients.models import Channel
from apps.subscriptions.management.commands import subscriptions_export
from apps.subscriptions.models import ConsentSource
from apps.subscriptions.services import ConsentUpdate, subscriptions_set

pytestmark = pytest.mark.django_db

STATES = {
    "1001": "opted_out",
    "1002": "opted_in",
    "a,b": "opted_out",  # a comma and a quote need CSV quoting
    'say "hi"': "unknown",
    "0042": "opted_in",
}


def set_states(channel: Channel, states: dict[str, str]) -> None:
    updates = [ConsentUpdate(customer_id=c, status=s) for c, s in states.items()]
    subscriptions_set(channel=channel, updates=updates, source=ConsentSource.ADMIN)


def export(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("subscriptions_export", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_writes_exactly_the_channels_customers(email: Channel, sms: Channel) -> None:
    set_states(email, STATES)
    set_states(email, {"1002": "opted_out"})  # the current state, not the history
    set_states(sms, {"1001": "opted_in", "other-channel": "opted_out"})

    output, summary = export("acme", "--channel", "504")

    assert output == (
        "customer_id,status\n"
        "0042,opted_in\n"
        "1001,opted_out\n"
        "1002,opted_out\n"
        '"a,b",opted_out\n'
        '"say ""hi""",unknown\n'
    )
    assert list(csv.reader(StringIO(output)))[1:] == sorted(
        [[c, s] for c, s in {**STATES, "1002": "opted_out"}.items()]
    )
    assert summary == "Exported 5 customer(s) of channel 504.\n"


def test_a_channel_without_customers_gets_the_header_only(email: Channel) -> None:
    assert export("acme", "--channel", "504") == (
        "customer_id,status\n",
        "Exported 0 customer(s) of channel 504.\n",
    )


def test_output_goes_to_a_file_written_whole(email: Channel, tmp_path: Path) -> None:
    set_states(email, STATES)
    target = tmp_path / "consent.csv"

    output, _ = export("acme", "--channel", "504", "--output", str(target))

    assert output == f"Exported 5 customer(s) of channel 504 to {target}.\n"
    assert target.read_text(encoding="utf-8").splitlines()[:3] == [
        "customer_id,status",
        "0042,opted_in",
        "1001,opted_out",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["consent.csv"]  # no partial file left


def test_rows_are_streamed_from_a_server_side_cursor(email: Channel, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows arrive while PostgreSQL still holds an open cursor for the query, CHUNK_SIZE per fetch:
    the export never holds the channel in memory."""
    monkeypatch.setattr(subscriptions_export, "CHUNK_SIZE", 100)
    set_states(email, {f"c{i:04d}": "opted_out" for i in range(1_000)})
    open_cursors: list[int] = []

    class Watching(StringIO):
        def write(self, text: str, /) -> int:
            if text[:1] == "c" and text[1:5].isdigit() and int(text[1:5]) % 250 == 0:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT count(*) FROM pg_cursors WHERE name LIKE '_django_curs_%%'")
                    row = cursor.fetchone()
                    assert row is not None
                    open_cursors.append(row[0])
            return super().write(text)

    out = Watching()
    call_command("subscriptions_export", "acme", "--channel", "504", stdout=out, stderr=StringIO())

    assert open_cursors == [1, 1, 1, 1]
    assert len(out.getvalue().splitlines()) == 1_001


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--channel", "504"], "No client with slug 'nope'. Known slugs: acme."),
        (
            ["acme", "--channel", "999"],
            "Client 'acme' has no channel with ChannelID 999. Its channels: 504, 505.",
        ),
        (
            ["acme", "--channel", "504", "--output", "/no/such/folder/x.csv"],
            "--output: the folder '/no/such/folder' does not exist.",
        ),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    email: Channel, sms: Channel, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError) as raised:
        export(*args)
    assert str(raised.value) == message


def test_the_channel_is_required(email: Channel) -> None:
    with pytest.raises(CommandError, match="the following arguments are required: --channel"):
        export("acme")
