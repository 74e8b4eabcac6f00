"""Waiting for work: claim, and when nothing is claimable, sleep until PostgreSQL says otherwise.

A trigger on tokens_s0 (migration 0002) sends NOTIFY on the channel `glisk_claimable` when a
statement leaves a token claimable without a lease. A waiting claimer LISTENs on its own
connection — before its first claim attempt, so no notification can slip between an empty claim
and the LISTEN — and retries its claim on every notification. Expired leases send nothing, so it
also retries every POLL_INTERVAL_S.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine

from glisk_cli.database_errors import translate_errors

CHANNEL = "glisk_claimable"
POLL_INTERVAL_S = 1.0

T = TypeVar("T")


def claim_or_wait(engine: Engine, attempt: Callable[[], list[T]], wait_s: float) -> list[T]:
    """Run `attempt` until it returns something or `wait_s` seconds have passed."""
    if wait_s <= 0:
        return attempt()
    deadline = time.monotonic() + wait_s
    with translate_errors(), engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql(f"LISTEN {CHANNEL}")
        listener = connection.connection.dbapi_connection
        try:
            while True:
                claimed = attempt()
                remaining = deadline - time.monotonic()
                if claimed or remaining <= 0:
                    return claimed
                # Returns at the first notification, or when the poll interval is up.
                for _ in listener.notifies(  # type: ignore[union-attr]
                    timeout=min(remaining, POLL_INTERVAL_S), stop_after=1
                ):
                    pass
        finally:
            connection.exec_driver_sql(f"UNLISTEN {CHANNEL}")
