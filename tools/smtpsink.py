"""A minimal SMTP server that accepts every mail: the mail provider stand-in of tests and benchmarks.

aiosmtpd spends about 2 ms of CPU on each mail, so on a 2-core machine it became the slowest part of a
campaign test and took a core from the platform under test; a real mail server would not. This one does
the same protocol steps (EHLO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT) in a fraction of
that. Standard library only: it runs in a child process of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# (MAIL FROM address, RCPT TO addresses, the message as received, dot-unstuffed, CRLF line ends)
Accepted = Callable[[str, list[str], bytes], None]


class SmtpSink(asyncio.Protocol):
    """One SMTP session of a server that accepts every mail and hands it to `accepted`."""

    def __init__(self, accepted: Accepted) -> None:
        self.accepted = accepted
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
            self.accepted(self.mail_from, self.rcpt_tos, content)
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


def smtp_sink_serve(
    host: str, port: int, accepted: Accepted, *, ready: Callable[[], object], stop: Callable[[], object]
) -> None:
    """Serves on host:port until `stop()` (a blocking wait, run in a thread) returns; calls `ready()`
    once listening. `accepted` runs on the server's loop for each mail, before the 250 answer."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SmtpSink(accepted), host, port)
        ready()
        await loop.run_in_executor(None, stop)
        server.close()

    asyncio.run(serve())
