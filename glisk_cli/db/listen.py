"""Waiting for work: claim, and when nothing is claimable, sleep until PostgreSQL says otherwise.

A trigger on tokens_s0 (migration 0002) sends NOTIFY on the channel `glisk_claimable` when a
statement leaves a token claimable without a lease. A waiting claimer LISTENs on its own
connection — before its first claim attempt, so no notification can slip between an empty claim
and the LISTEN — and retries its claim on every notification. Expired leases send nothing, so it
also retries every POLL_INTERVAL_S. With no session to LISTEN on (a transaction pooler and no
DATABASE_DIRECT_URL: `Database.can_listen`), it only polls.
"""

from __future__ import annotations

import contextlib
import select
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from sqlalchemy import Connection, Engine

from glisk_cli.db.translate import translate_errors

CHANNEL = "glisk_claimable"
POLL_INTERVAL_S = 1.0

T = TypeVar("T")


def claim_or_wait(engine: Engine | None, attempt: Callable[[], list[T]], wait_s: float) -> list[T]:
    """Run `attempt` until it returns something or `wait_s` seconds have passed, woken by
    NOTIFY on `engine`'s connections (a session engine), or polling when `engine` is None."""
    if wait_s <= 0:
        return attempt()
    deadline = time.monotonic() + wait_s
    listener = None if engine is None else Listener(engine)
    if listener is not None:
        listener.open()  # before the first attempt: no notification slips in between
    try:
        while True:
            claimed = attempt()
            remaining = deadline - time.monotonic()
            if claimed or remaining <= 0:
                return claimed
            # Back at the first notification, or when the poll interval is up.
            if listener is None:
                time.sleep(min(remaining, POLL_INTERVAL_S))
            else:
                listener.wait(min(remaining, POLL_INTERVAL_S))
    finally:
        if listener is not None:
            listener.close()


class Listener:
    """A connection of its own LISTENing on CHANNEL, for a loop that waits on many things at
    once (`glisk work`): its socket turns readable when a notification comes, and `drain()`
    then reads them. Broken or closed, it says so (`fileno()` is None) and the loop polls."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None

    def open(self) -> None:
        with translate_errors():
            connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                connection.exec_driver_sql(f"LISTEN {CHANNEL}")
            except BaseException:
                connection.close()
                raise
        self._connection = connection

    def fileno(self) -> int | None:
        driver = self._driver()
        return None if driver is None else driver.fileno()

    def wait(self, timeout: float) -> int:
        """Sleep until a notification comes or `timeout` seconds pass; how many came."""
        fileno = self.fileno()
        if fileno is None:
            time.sleep(timeout)
            return 0
        poller = select.poll()  # costs no system call to make, unlike an epoll selector
        poller.register(fileno, select.POLLIN)
        poller.poll(timeout * 1000)
        return self.drain()

    def drain(self) -> int:
        """Read the notifications that came; how many. A broken connection is closed."""
        driver = self._driver()
        if driver is None:
            return 0
        try:
            return sum(1 for _ in driver.notifies(timeout=0))
        except psycopg.Error:
            self.close()
            return 0

    def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):  # closing a broken connection may fail too
                connection.invalidate()
                connection.close()

    def _driver(self) -> psycopg.Connection | None:
        if self._connection is None:
            return None
        driver = self._connection.connection.dbapi_connection
        if driver is None or driver.closed:  # type: ignore[union-attr]
            self.close()
            return None
        return driver  # type: ignore[return-value]
