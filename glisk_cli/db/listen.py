"""LISTEN for claimable work: a connection of its own on the channel `glisk_claimable`.

A trigger on tokens_s0 (migration 0002) sends NOTIFY on that channel when a statement leaves a
token claimable without a lease. Expired leases send nothing, so whoever waits on a Listener also
claims again every POLL_INTERVAL_S (`work/waiting.py`). With no session to LISTEN on (a
transaction pooler and no DATABASE_DIRECT_URL: `Database.can_listen`), there is no Listener and
waiting only polls.
"""

from __future__ import annotations

import contextlib

import psycopg
from sqlalchemy import Connection, Engine

from glisk_cli.db.translate import translate_errors

CHANNEL = "glisk_claimable"
POLL_INTERVAL_S = 1.0


class Listener:
    """A connection of its own LISTENing on CHANNEL: its socket turns readable when a
    notification comes, and `drain()` then reads them. Broken or closed, it says so (`fileno()`
    is None), and whoever waits on it polls."""

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
