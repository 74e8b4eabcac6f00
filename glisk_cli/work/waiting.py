"""Waiting for work: until PostgreSQL notifies that a token became claimable (the LISTEN
connection, `db/listen.py`), something else wakes the waiter (a job ended, a signal came), or
the timeout runs out — whichever comes first, in one `poll`.

`claim_or_wait` is `glisk tokens claim --wait`: it LISTENs before its first claim, so no
notification can slip between a claim that found nothing and the wait, and claims again on every
notification and every POLL_INTERVAL_S (an expired lease notifies nobody). The runner's loop
sleeps on a Waiter between its turns.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Callable
from typing import TypeVar

from glisk_cli.db.listen import POLL_INTERVAL_S, Listener
from glisk_cli.errors import DatabaseUnavailable

T = TypeVar("T")

_LISTEN_RETRY_S = 10.0


class Waiter:
    """Sleeps until woken, notified or timed out. Without a Listener (none can LISTEN behind a
    transaction pooler) only a wake-up or the timeout ends a wait."""

    def __init__(self, listener: Listener | None) -> None:
        self._listener = listener
        self._listen_at = 0.0
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._woken = False  # a wake-up is pending: the next wait returns at once

    def wake(self) -> None:
        """Cut the current (or next) wait short; safe from any thread or a signal handler."""
        if self._woken:
            return  # one send per wait is enough: the slots wake the runner for every job
        self._woken = True
        # A full socket means a wake-up is pending already; a closed one, the waiter is done.
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
        # Only once the socket is empty: a wake-up that came since found the flag set and sent
        # nothing, but its caller's news is there for the runner to see when this returns.
        self._woken = False
        return self._listener is not None and self._listener.drain() > 0

    def close(self) -> None:
        self._read.close()
        self._write.close()
        if self._listener is not None:
            self._listener.close()


def claim_or_wait(
    listener: Listener | None, attempt: Callable[[], list[T]], wait_s: float
) -> list[T]:
    """Run `attempt` until it returns something or `wait_s` seconds have passed, woken by NOTIFY
    on `listener`, or polling without one."""
    if wait_s <= 0:
        return attempt()
    deadline = time.monotonic() + wait_s
    if listener is not None:
        listener.open()  # before the first attempt: no notification slips in between
    waiter = Waiter(listener)
    try:
        while True:
            claimed = attempt()
            remaining = deadline - time.monotonic()
            if claimed or remaining <= 0:
                return claimed
            waiter.wait(min(remaining, POLL_INTERVAL_S))  # back at the first notification
    finally:
        waiter.close()
