"""Local stand-ins for providers: an SMTP server and an HTTP server that record what arrives, with the
arrival time, so tests can check timing, counts, repeats and idempotency keys."""

from __future__ import annotations

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
from tools.smtpsink import smtp_sink_serve


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


def _smtp_child(host: str, port: int, out: Any, ready: Any, stop: Any) -> None:
    """Runs in its own process, as a real mail server would: it does not share the test's GIL."""

    def accepted(mail_from: str, rcpt_tos: list[str], content: bytes) -> None:
        out.put((time.time(), mail_from, rcpt_tos, content))

    smtp_sink_serve(host, port, accepted, ready=ready.set, stop=stop.wait)
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
