"""HTTP/1.1 for the health server, on asyncio: request heads, responses, and the connection.

Why a hand-rolled asyncio server: /health must answer thousands of requests a second with a low
tail latency on two cores while PostgreSQL sees at most a few checks per second, and neither a
framework's per-request machinery nor a thread per connection leaves room for that (bench/README.md
compares them). So every connection lives on one event loop (an idle or slow client costs a few
hundred bytes, not a thread), each response leaves in one write (no Nagle delay between pieces),
and since only a few fixed paths exist, a minimal HTTP/1.1 with keep-alive is all the parsing
needed. Anything unusual (a request body, a malformed head) is answered and the connection closed
rather than interpreted.

This module is the wire format only: what to answer is the `Application`'s business
(`glisk_cli.serve.app`), and a `Connection` asks it through that small interface.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import NamedTuple, Protocol, cast

from glisk_cli.logging import logger

HEAD_TIMEOUT_S = 10.0  # a client must send a whole request head within this (slowloris)
IDLE_TIMEOUT_S = 10.0  # keep-alive connections idle this long are closed
WRITE_TIMEOUT_S = 10.0  # a client that stops reading its responses is dropped after this
MAX_HEAD_BYTES = 8192


# -- responses ----------------------------------------------------------------------------------


class Response(NamedTuple):
    code: int
    head: bytes  # status line and fixed headers, up to (not including) the blank line
    body: bytes


def make_response(
    code: int, reason: str, body: bytes, content_type: str, extra: str = ""
) -> Response:
    head = (
        f"HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n{extra}"
    )
    return Response(code, head.encode("latin-1"), body)


def json_response(code: int, reason: str, document: object, extra: str = "") -> Response:
    body = json.dumps(document, separators=(",", ":")).encode()
    return make_response(code, reason, body, "application/json", extra)


def error_response(code: int, reason: str, error: str, message: str, extra: str = "") -> Response:
    return json_response(code, reason, {"error": {"code": error, "message": message}}, extra)


# What the connection answers by itself, before or instead of asking the application.
BAD_REQUEST = error_response(400, "Bad Request", "bad_request", "malformed HTTP request")
TOO_LARGE = error_response(
    431, "Request Header Fields Too Large", "bad_request", "request head too large"
)
INTERNAL = error_response(500, "Internal Server Error", "internal_error", "unexpected error")


# -- requests -----------------------------------------------------------------------------------


class Request(NamedTuple):
    method: bytes
    path: bytes
    keep_alive: bool
    http10: bool
    origin: bytes | None
    query: bytes = b""  # after the `?`, as sent
    authorization: bytes | None = None  # the Authorization header's value (the web view's)


def parse_head(head: bytes) -> Request | None:
    """The few things the server needs from a request head, or None when it is malformed."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return None
    method, target, version = parts
    http10 = version == b"HTTP/1.0"
    keep_alive, origin, authorization, body = not http10, None, None, False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            return None  # this includes obsolete line folding, which RFC 9112 says to reject
        name = name.lower()
        if name == b"connection":
            tokens = {token.strip() for token in value.lower().split(b",")}
            keep_alive = b"close" not in tokens and (keep_alive or b"keep-alive" in tokens)
        elif name == b"origin":
            origin = value.strip()
        elif name == b"authorization":
            authorization = value.strip()
        elif name == b"content-length":
            if not value.strip().isdigit():
                return None
            body = body or int(value) > 0
        elif name == b"transfer-encoding":
            body = True
    if target.startswith((b"http://", b"https://")):  # absolute form, as sent to a proxy
        target = b"/" + (target.split(b"/", 3)[3:] or [b""])[0]
    path, _, query = target.partition(b"?")
    # No body is ever read: answer, then close, so a body can never be taken for a request.
    return Request(method, path, keep_alive and not body, http10, origin, query, authorization)


# -- connections --------------------------------------------------------------------------------


class Application(Protocol):
    """What a `Connection` needs from the application it serves, shared by every connection."""

    stopping: bool  # shutting down: accept no connection, keep none alive
    connections: set[Connection]  # the open ones; a connection adds itself, `forget` removes it
    cors_origins: frozenset[bytes]  # origins that get Access-Control-Allow-Origin
    access_log: bool  # log every request (at DEBUG)
    max_connections: int  # beyond this, new connections are aborted at once

    def answer_now(self, request: Request) -> Response | None:
        """The response when it needs no waiting; None when it must come from `answer`."""
        ...

    async def answer(self, request: Request) -> Response:
        """The response to a request that `answer_now` could not answer at once."""
        ...

    def date_header(self) -> bytes:
        """The current `Date:` header line, CRLF included."""
        ...

    def forget(self, connection: Connection) -> None:
        """Called once `connection` has closed."""
        ...


class Connection(asyncio.Protocol):
    """One client connection: requests answered in order, keep-alive, flow control, timeouts."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.transport = cast(asyncio.Transport, None)
        self.buffer = b""
        self.busy = False  # a response awaits the application; later requests wait their turn
        self.write_paused = False
        self.closing = False
        self.peer_done = False  # the client has half-closed: answer what is pending, then close
        self.last_active = self.request_started = self.paused_since = time.monotonic()
        self.pending: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.app.stopping or len(self.app.connections) >= self.app.max_connections:
            self.closing = True
            self.transport.abort()  # shed load here rather than run out of file descriptors
            return
        self.app.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.app.forget(self)

    def eof_received(self) -> bool:
        # The client will send nothing more; a response still being prepared may go out.
        self.peer_done = True
        self.closing = not self.busy
        return self.busy  # False: asyncio closes the transport now

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.last_active = now
        if self.buffer:
            self.buffer += data
        else:
            self.buffer, self.request_started = data, now
        if not self.busy and not self.write_paused:
            self._process()
        elif len(self.buffer) > MAX_HEAD_BYTES:
            self.transport.pause_reading()  # pipelining faster than we answer: wait

    def pause_writing(self) -> None:
        self.write_paused, self.paused_since = True, time.monotonic()
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if not self.busy and not self.closing:
            self.transport.resume_reading()
            self._process()

    def _process(self) -> None:
        while not (self.busy or self.write_paused or self.closing):
            buffer = self.buffer
            if buffer[:1] in (b"\r", b"\n"):  # stray line ends before a request are allowed
                buffer = self.buffer = buffer.lstrip(b"\r\n")
            end = buffer.find(b"\r\n\r\n")
            if end > MAX_HEAD_BYTES or (end < 0 and len(buffer) > MAX_HEAD_BYTES):
                self._send(None, TOO_LARGE)
                return
            if end < 0:
                return
            self.buffer, self.request_started = buffer[end + 4 :], self.last_active
            request = parse_head(buffer[:end])
            if request is None:
                self._send(None, BAD_REQUEST)
                return
            response = self.app.answer_now(request)
            if response is None:
                self.busy = True
                self.pending = asyncio.get_running_loop().create_task(self._answer_later(request))
                return
            self._send(request, response)

    async def _answer_later(self, request: Request) -> None:
        try:
            response = await self.app.answer(request)
        except Exception:
            logger.exception("unexpected error answering a request")
            response = INTERNAL
        self.busy, self.pending = False, None
        if self.transport.is_closing():
            return
        self._send(request, response)
        if not self.closing and not self.write_paused:
            self.transport.resume_reading()
            self._process()

    def _send(self, request: Request | None, response: Response) -> None:
        keep = request is not None and request.keep_alive and not self.app.stopping
        keep = keep and not (self.closing or self.peer_done)
        parts = [response.head, self.app.date_header()]
        if request is not None and request.origin in self.app.cors_origins:
            parts += (b"Access-Control-Allow-Origin: ", request.origin, b"\r\nVary: Origin\r\n")
        if not keep:
            parts.append(b"Connection: close\r\n")
        elif request is not None and request.http10:
            parts.append(b"Connection: keep-alive\r\n")
        parts.append(b"\r\n")
        if request is None or request.method != b"HEAD":
            parts.append(response.body)
        self.transport.write(b"".join(parts))  # one write per response: no Nagle stalls
        if self.app.access_log:
            line = b"%s %s" % (request.method, request.path) if request else b"-"
            logger.debug("{} {}", line.decode("latin-1"), response.code)
        if not keep:
            self.closing = True
            self.transport.close()

    def shutdown(self) -> None:
        """Close now if idle; otherwise the response in flight closes the connection."""
        if not self.busy:
            self.closing = True
            self.transport.close()

    def expire(self, now: float) -> None:
        """Drop a client that is too slow to send a request, idle too long, or not reading."""
        if self.busy or self.closing:
            return
        if self.write_paused:
            expired = now - self.paused_since > WRITE_TIMEOUT_S
        elif self.buffer:
            expired = now - self.request_started > HEAD_TIMEOUT_S
        else:
            expired = now - self.last_active > IDLE_TIMEOUT_S
        if expired:
            self.closing = True
            self.transport.abort()
