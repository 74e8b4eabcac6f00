"""How the runner's loop sleeps: until a job lands, a signal asks it to stop, PostgreSQL
notifies that a token became claimable, or the timeout the loop chose runs out — whichever
comes first, in one `poll` of a wake-up socket and the LISTEN connection."""

from __future__ import annotations

import contextlib
import select
import socket
import time

from glisk_cli.db.listen import Listener
from glisk_cli.errors import DatabaseUnavailable

_LISTEN_RETRY_S = 10.0


class Waiter:
    def __init__(self, listener: Listener | None) -> None:
        self._listener = listener
        self._listen_at = 0.0
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)

    def wake(self) -> None:
        """Cut the current (or next) wait short; safe from any thread or a signal handler."""
        # A full socket means a wake-up is pending already; a closed one, the runner is done.
        with contextlib.suppress(OSError):
            self._write.send(b"\0")

    def listen(self) -> None:
        """LISTEN, unless already listening: before the next claim, so no notification can
        slip between a claim that found nothing and the wait; again after a database outage."""
        listener = self._listener
        if listener is None or listener.fileno() is not None or time.monotonic() < self._listen_at:
            return
        try:
            listener.open()
        except DatabaseUnavailable:
            self._listen_at = time.monotonic() + _LISTEN_RETRY_S

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds; True when PostgreSQL said work became claimable."""
        # A poll object costs no system call to make, unlike an epoll selector.
        poller = select.poll()
        poller.register(self._read, select.POLLIN)
        listening = self._listener.fileno() if self._listener is not None else None
        if listening is not None:
            poller.register(listening, select.POLLIN)
        poller.poll(timeout * 1000)
        with contextlib.suppress(BlockingIOError):
            while self._read.recv(4096):
                pass
        return self._listener is not None and self._listener.drain() > 0

    def close(self) -> None:
        self._read.close()
        self._write.close()
        if self._listener is not None:
            self._listener.close()
