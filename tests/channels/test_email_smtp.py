"""The SMTP backend against a real SMTP server (aiosmtpd) started by the test on a free port."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from apps.channels.backends.email import SmtpBackend
from apps.channels.base import ChannelConfigError, SendResult, SendStatus
from apps.message_templates.types import RenderedMessage
from tests.channels.helpers import closed_port, outbound, silent_server, statuses
from tools.devservers import free_port

FROM = "Shop News <news@shop.example>"


@dataclass
class Received:
    peer: tuple[str, int]
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class RecordingHandler:
    """Accepts everything except the addresses it is told to refuse, and can drop the connection."""

    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    drop_on_data: set[str] = field(default_factory=set)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        to = envelope.rcpt_tos[0]
        if to in self.drop_on_data:
            server.transport.close()
            return "421 gone"
        if to in self.data_replies:
            return self.data_replies[to]
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(Received(session.peer, envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    port: int
    handler: RecordingHandler

    def connections(self) -> set[tuple[str, int]]:
        """Distinct client (host, port) pairs that delivered mail: one per SMTP connection."""
        return {r.peer for r in self.handler.received}


def _start(handler: RecordingHandler, **kwargs: Any) -> tuple[Controller, int]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, port


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    handler = RecordingHandler()
    controller, port = _start(handler)
    try:
        yield SmtpServer(port, handler)
    finally:
        controller.stop()


def make_backend(port: int, timeout: float = 5.0, **options: Any) -> SmtpBackend:
    secrets = options.pop("secrets", {})
    return SmtpBackend(
        options={"host": "127.0.0.1", "port": port, "from_email": FROM, **options},
        secrets=secrets,
        timeout=timeout,
    )


def _html_message(i: int) -> RenderedMessage:
    return RenderedMessage(subject=f"Offer {i}", text=f"Plain offer {i}", html=f"<p>HTML offer {i}</p>")


def test_a_batch_goes_over_one_connection_with_stable_message_ids_and_both_parts(
    smtp_server: SmtpServer,
) -> None:
    messages = [
        outbound(i, f"customer{i}@mail.example", content=_html_message(i), key=f"run9-c{i}-t12")
        for i in range(1, 5)
    ]
    backend = make_backend(smtp_server.port, reply_to="help@shop.example", headers={"X-Campaign": "7001"})
    with backend:
        results = backend.send_batch(messages)

    assert results == [
        SendResult(i, SendStatus.SENT, provider_message_id=f"<run9-c{i}-t12@shop.example>")
        for i in range(1, 5)
    ]
    received = smtp_server.handler.received
    assert len(received) == 4
    assert len(smtp_server.connections()) == 1
    for i, item in enumerate(received, start=1):
        msg = item.message
        assert item.mail_from == "news@shop.example"
        assert item.rcpt_tos == [f"customer{i}@mail.example"]
        assert msg["Message-ID"] == f"<run9-c{i}-t12@shop.example>"
        assert msg["Subject"] == f"Offer {i}"
        assert msg["From"] == FROM
        assert msg["To"] == f"customer{i}@mail.example"
        assert msg["Reply-To"] == "help@shop.example"
        assert msg["X-Campaign"] == "7001"
        assert msg.get_content_type() == "multipart/alternative"
        parts = {part.get_content_type(): part.get_content().strip() for part in msg.iter_parts()}
        assert parts == {"text/plain": f"Plain offer {i}", "text/html": f"<p>HTML offer {i}</p>"}


def test_a_big_batch_is_shared_over_several_connections_each_message_once_in_order(
    smtp_server: SmtpServer,
) -> None:
    smtp_server.handler.drop_on_data.add("c17@mail.example")
    messages = [outbound(i, f"c{i}@mail.example", key=f"k{i}") for i in range(1, 41)]
    with make_backend(smtp_server.port, connections=3) as backend:
        results = backend.send_batch(messages)

    # One result per message, in the batch's order; the dropped one is retried, nothing else is hurt.
    assert [r.message_id for r in results] == list(range(1, 41))
    assert [r.status for r in results].count(SendStatus.SENT) == 39
    assert results[16] == SendResult(17, SendStatus.RETRY, error="mail server closed the connection")
    received = smtp_server.handler.received
    assert sorted(r.rcpt_tos[0] for r in received) == sorted(
        f"c{i}@mail.example" for i in range(1, 41) if i != 17
    )
    # Three connections side by side, plus the one that replaced the dropped connection.
    assert len(smtp_server.connections()) == 4
    # Each connection took its messages in the batch's order.
    by_connection: dict[tuple[str, int], list[int]] = {}
    for r in received:
        by_connection.setdefault(r.peer, []).append(int(r.rcpt_tos[0][1:].split("@")[0]))
    assert all(ids == sorted(ids) for ids in by_connection.values())


def test_a_small_batch_uses_one_connection_whatever_the_cap(smtp_server: SmtpServer) -> None:
    with make_backend(smtp_server.port, connections=8) as backend:
        backend.send_batch([outbound(i, f"c{i}@mail.example") for i in range(1, 13)])
    assert len(smtp_server.handler.received) == 12
    assert len(smtp_server.connections()) == 1


def test_a_resend_after_a_crash_carries_the_same_message_id(smtp_server: SmtpServer) -> None:
    message = outbound(1, "again@mail.example", key="run9-c1-t12")
    with make_backend(smtp_server.port, message_id_domain="mid.shop.example") as backend:
        backend.send_batch([message])
    with make_backend(smtp_server.port, message_id_domain="mid.shop.example") as backend:
        backend.send_batch([message])
    ids = [r.message["Message-ID"] for r in smtp_server.handler.received]
    assert ids == ["<run9-c1-t12@mid.shop.example>", "<run9-c1-t12@mid.shop.example>"]
    assert len(smtp_server.connections()) == 2  # one per batch


def test_keys_a_message_id_cannot_hold_are_hashed_stably(smtp_server: SmtpServer) -> None:
    backend = make_backend(smtp_server.port)
    odd = outbound(1, "a@mail.example", key="run 9/<cust 1>")
    assert backend.message_id(odd) == backend.message_id(odd)
    assert backend.message_id(odd).startswith("<")
    assert " " not in backend.message_id(odd)
    [result] = backend.send_batch([odd])
    assert result.status == SendStatus.SENT
    assert smtp_server.handler.received[0].message["Message-ID"] == backend.message_id(odd)


def test_smtp_answers_map_to_retry_or_failed_per_message(smtp_server: SmtpServer) -> None:
    handler = smtp_server.handler
    handler.rcpt_replies["gone@mail.example"] = "550 5.1.1 <gone@mail.example>: user unknown"
    handler.rcpt_replies["busy@mail.example"] = "451 4.3.0 try again later"
    handler.data_replies["spam@mail.example"] = "554 5.7.1 rejected as spam"
    handler.data_replies["full@mail.example"] = "452 4.2.2 mailbox full"
    addresses = [
        "ok1@mail.example",
        "gone@mail.example",
        "busy@mail.example",
        "spam@mail.example",
        "full@mail.example",
        "ok2@mail.example",
    ]
    with make_backend(smtp_server.port) as backend:
        results = backend.send_batch([outbound(i, a) for i, a in enumerate(addresses, start=1)])

    assert [(r.message_id, r.status, r.error) for r in results] == [
        (1, SendStatus.SENT, ""),
        (2, SendStatus.FAILED, "recipient refused (550): 5.1.1 <[address]>: user unknown"),
        (3, SendStatus.RETRY, "recipient refused (451): 4.3.0 try again later"),
        (4, SendStatus.FAILED, "mail server refused (554): 5.7.1 rejected as spam"),
        (5, SendStatus.RETRY, "mail server refused (452): 4.2.2 mailbox full"),
        (6, SendStatus.SENT, ""),
    ]
    assert [r.rcpt_tos for r in handler.received] == [["ok1@mail.example"], ["ok2@mail.example"]]
    assert len(smtp_server.connections()) == 1  # refusals do not cost the connection


def test_invalid_address_fails_without_talking_to_the_server(smtp_server: SmtpServer) -> None:
    with make_backend(smtp_server.port) as backend:
        results = backend.send_batch(
            [outbound(1, "not an address"), outbound(2, "x@y\n.example"), outbound(3, "fine@mail.example")]
        )
    assert [(r.status, r.error) for r in results] == [
        (SendStatus.FAILED, "invalid email address"),
        (SendStatus.FAILED, "invalid email address"),
        (SendStatus.SENT, ""),
    ]
    assert len(smtp_server.handler.received) == 1


def test_a_dropped_connection_retries_that_message_and_reconnects_for_the_rest(
    smtp_server: SmtpServer,
) -> None:
    smtp_server.handler.drop_on_data.add("drop@mail.example")
    addresses = ["a@mail.example", "drop@mail.example", "b@mail.example", "c@mail.example"]
    with make_backend(smtp_server.port) as backend:
        results = backend.send_batch([outbound(i, a) for i, a in enumerate(addresses, start=1)])

    assert [(r.status, r.error) for r in results] == [
        (SendStatus.SENT, ""),
        (SendStatus.RETRY, "mail server closed the connection"),
        (SendStatus.SENT, ""),
        (SendStatus.SENT, ""),
    ]
    received = smtp_server.handler.received
    assert [r.rcpt_tos[0] for r in received] == ["a@mail.example", "b@mail.example", "c@mail.example"]
    # Before the drop one connection, after it one new connection shared by the rest.
    assert received[0].peer != received[1].peer
    assert received[1].peer == received[2].peer


def test_connection_refused_retries_the_whole_batch_quickly() -> None:
    backend = make_backend(closed_port())
    started = time.monotonic()
    with backend:
        results = backend.send_batch([outbound(i, f"c{i}@mail.example") for i in range(1, 4)])
    assert [(r.message_id, r.status, r.error) for r in results] == [
        (i, SendStatus.RETRY, "mail server unreachable: ConnectionRefusedError") for i in range(1, 4)
    ]
    assert time.monotonic() - started < 2


def test_a_silent_server_times_out_once_and_the_batch_is_retried() -> None:
    with silent_server() as port:
        backend = make_backend(port, timeout=0.3)
        started = time.monotonic()
        results = backend.send_batch([outbound(1, "a@mail.example"), outbound(2, "b@mail.example")])
        elapsed = time.monotonic() - started
    assert [(r.status, r.error) for r in results] == [
        (SendStatus.RETRY, "mail server timed out after 0.3s"),
        (SendStatus.RETRY, "mail server timed out after 0.3s"),
    ]
    assert elapsed < 1.5  # the timeout was paid once, not once per message


def test_login_with_the_password_from_secrets_and_a_refused_login_fails() -> None:
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"s3cret-pass", handled=False)

    handler = RecordingHandler()
    controller, port = _start(handler, authenticator=authenticator, auth_require_tls=False)
    try:
        good = make_backend(port, username="mailer", secrets={"password": "s3cret-pass"})
        bad = make_backend(port, username="mailer", secrets={"password": "wrong-pass"})
        good_results = good.send_batch([outbound(1, "a@mail.example")])
        good.close()
        bad_results = bad.send_batch([outbound(2, "b@mail.example")])
        bad.close()
    finally:
        controller.stop()
    assert statuses(good_results) == [(1, SendStatus.SENT)]
    assert [(r.status, r.error) for r in bad_results] == [
        (SendStatus.FAILED, "login failed (535): 5.7.8 Authentication credentials invalid")
    ]
    assert "wrong-pass" not in bad_results[0].error
    # smtplib tries each mechanism the server offers (PLAIN, then LOGIN) before giving up.
    assert logins == [(b"mailer", b"s3cret-pass"), (b"mailer", b"wrong-pass"), (b"mailer", b"wrong-pass")]
    assert [r.rcpt_tos for r in handler.received] == [["a@mail.example"]]


def test_empty_content_fails_that_message(smtp_server: SmtpServer) -> None:
    with make_backend(smtp_server.port) as backend:
        [result] = backend.send_batch([outbound(1, "a@mail.example", content=RenderedMessage(subject="x"))])
    assert (result.status, result.error) == (
        SendStatus.FAILED,
        "the rendered email has neither text nor html",
    )
    assert smtp_server.handler.received == []


def test_config_errors_name_what_is_missing() -> None:
    assert SmtpBackend.config_errors(options={}, secrets={}) == [
        "option from_email is required, e.g. 'Shop <news@shop.example>'",
        "option host is required",
    ]
    assert SmtpBackend.config_errors(
        options={
            "host": "mx",
            "from_email": FROM,
            "port": "25",
            "use_tls": True,
            "use_ssl": True,
            "username": "u",
            "headers": {"Message-ID": "<x@y>"},
            "connections": 0,
        },
        secrets={},
    ) == [
        "option headers may not set Message-ID",
        "option connections must be a whole number from 1 to 16",
        "option port must be a port number",
        "options use_tls and use_ssl cannot both be true",
        "secret password is required when option username is set",
    ]
    with pytest.raises(ChannelConfigError, match=r"^provider smtp: option host is required$"):
        SmtpBackend(options={"from_email": FROM}, secrets={})
