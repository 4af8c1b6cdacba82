"""Local stand-ins for providers: an SMTP server and an HTTP server that record what arrives, with the
arrival time, so tests can check timing, counts, repeats and idempotency keys."""

from __future__ import annotations

import asyncio
import functools
import json
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from queue import Empty
from typing import Any

from tools.devservers import free_port


@dataclass
class Received:
    at: float  # time.time() on arrival
    headers: dict[str, str]
    body: bytes
    path: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    url: str
    received: list[Received] = field(default_factory=list)
    # Decides the answer for each request: (status, body); default 200 {"ok": true}.
    respond: Callable[[Received], tuple[int, dict[str, Any]]] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.received)


@contextmanager
def http_receiver(
    respond: Callable[[Received], tuple[int, dict[str, Any]]] | None = None,
) -> Iterator[HttpReceiver]:
    port = free_port()
    receiver = HttpReceiver(url=f"http://127.0.0.1:{port}/hook", respond=respond)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would offer
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if len(body) < length:
                return  # the sender died mid-request (a killed worker): a real server drops it too
            item = Received(time.time(), {k.lower(): v for k, v in self.headers.items()}, body, self.path)
            status, payload = (receiver.respond or (lambda _: (200, {"ok": True})))(item)
            with receiver.lock:
                receiver.received.append(item)
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                return  # the sender went away (a worker stopped at the end of a test): nothing to answer

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mail:
    at: float
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @functools.cached_property
    def message(self) -> EmailMessage:
        # Parsed when a test reads it, not on arrival: parsing costs about a millisecond of the
        # test process's CPU, which a real mail server would not take from the platform.
        message = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class SmtpReceiver:
    host: str
    port: int
    mails: list[Mail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.mails)


class _SmtpSink(asyncio.Protocol):
    """A minimal SMTP server that accepts every mail. aiosmtpd spends about 2 ms of CPU on each mail, so
    on this 2-core machine it became the slowest part of a campaign test and took a core from the
    platform under test; a real mail server would not. This one does the same protocol steps (EHLO,
    MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT) in a fraction of that."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.buffer = bytearray()
        self.mail_from = ""
        self.rcpt_tos: list[str] = []
        self.data: list[bytes] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, chunk: bytes) -> None:
        self.buffer += chunk
        replies: list[bytes] = []
        start = 0
        while (end := self.buffer.find(b"\r\n", start)) != -1:
            line = bytes(self.buffer[start:end])
            start = end + 2
            reply = self._line(line)
            if reply:
                replies.append(reply)
        del self.buffer[:start]
        if replies and self.transport is not None:
            self.transport.write(b"".join(replies))
            if replies[-1].startswith(b"221"):
                self.transport.close()

    def _line(self, line: bytes) -> bytes:
        if self.data is not None:
            if line != b".":
                self.data.append(line[1:] if line.startswith(b"..") else line)
                return b""
            content = b"\r\n".join(self.data) + b"\r\n"
            self.out.put((time.time(), self.mail_from, self.rcpt_tos, content))
            self.data, self.mail_from, self.rcpt_tos = None, "", []
            return b"250 OK\r\n"
        verb = line[:4].upper()
        if verb == b"EHLO":
            return b"250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 33554432\r\n"
        if verb == b"HELO" or verb == b"NOOP":
            return b"250 OK\r\n"
        if verb == b"MAIL":
            self.mail_from, self.rcpt_tos = _smtp_path(line), []
            return b"250 OK\r\n"
        if verb == b"RCPT":
            self.rcpt_tos.append(_smtp_path(line))
            return b"250 OK\r\n"
        if verb == b"DATA":
            if not self.rcpt_tos:
                return b"503 need RCPT\r\n"
            self.data = []
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if verb == b"RSET":
            self.mail_from, self.rcpt_tos = "", []
            return b"250 OK\r\n"
        if verb == b"QUIT":
            return b"221 Bye\r\n"
        return b"502 not implemented\r\n"


def _smtp_path(line: bytes) -> str:
    """The address in `MAIL FROM:<a@b> SIZE=12` or `RCPT TO:<a@b>`."""
    text = line.decode("utf-8", errors="replace")
    opened, closed = text.find("<"), text.find(">")
    return text[opened + 1 : closed] if -1 < opened < closed else text.partition(":")[2].strip()


def _smtp_child(host: str, port: int, out: Any, ready: Any, stop: Any) -> None:
    """Runs in its own process, as a real mail server would: it does not share the test's GIL."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _SmtpSink(out), host, port)
        ready.set()
        await loop.run_in_executor(None, stop.wait)
        server.close()

    asyncio.run(serve())
    out.close()
    out.join_thread()  # every accepted mail reaches the parent before this process ends


@contextmanager
def smtp_receiver() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver("127.0.0.1", free_port())
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    ready = context.Event()
    child_stop = context.Event()
    child = context.Process(
        target=_smtp_child, args=(receiver.host, receiver.port, queue, ready, child_stop), daemon=True
    )
    child.start()
    if not ready.wait(30):
        child.kill()
        raise RuntimeError("the SMTP receiver did not start")
    stop = threading.Event()

    def drain() -> None:
        while True:
            try:
                at, mail_from, rcpt_tos, content = queue.get(timeout=0.1)
            except Empty:
                if stop.is_set():
                    return
                continue
            with receiver.lock:
                receiver.mails.append(Mail(at, mail_from, rcpt_tos, content))

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    try:
        yield receiver
    finally:
        child_stop.set()
        child.join(15)
        if child.is_alive():
            child.kill()
        stop.set()  # the drainer empties the queue, then ends
        drainer.join(15)
