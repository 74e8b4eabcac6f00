"""One pooled connection kept out of the pool between Units of Work (docs/architecture.md, "The
workers' path below the ORM").

A worker runs Unit of Work after Unit of Work, each a short transaction. In a profile of a
worker's claim loop, SQLAlchemy's checkout and check-in were the largest client cost beyond the
driver's own; so the connection a transaction ended cleanly on is kept here, and the next
transaction (of any thread) takes it without a checkout. At most one is kept; the pool still
hands out every other connection and remains the only place they are made.

What the pool would do on check-in, the Unit of Work did already: its transaction ended with
COMMIT or ROLLBACK, and a connection that broke or is mid-transaction goes back to the pool
instead (`Transaction.close`). Pool events (checkout, checkin) do not fire for a kept
connection, so a Database that pings on checkout keeps none.
"""

from __future__ import annotations

import os
import threading
import weakref

from sqlalchemy import Engine
from sqlalchemy.pool import PoolProxiedConnection


class KeptConnection:
    """A slot for one checked-out connection of `engine`'s pool, shared by its Units of Work."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._slot: list[PoolProxiedConnection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # A Database dropped without dispose() still checks its kept connection back in.
        weakref.finalize(self, _check_in, self._slot, self._pid)

    def take(self) -> PoolProxiedConnection:
        """The kept connection, or else one from the pool (which may raise psycopg's errors)."""
        if self._slot and os.getpid() == self._pid:
            with self._lock:
                if self._slot:
                    return self._slot.pop()
        return self._engine.raw_connection()

    def keep(self, pooled: PoolProxiedConnection) -> None:
        """Keep `pooled`, idle between transactions, for the next Unit of Work; back to the pool
        when one is kept already."""
        if os.getpid() == self._pid:
            with self._lock:
                if not self._slot:
                    self._slot.append(pooled)
                    return
        pooled.close()

    def close(self) -> None:
        """Check the kept connection back in (before the pool is disposed)."""
        with self._lock:
            _check_in(self._slot, self._pid)


def _check_in(slot: list[PoolProxiedConnection], pid: int) -> None:
    # A forked child must not touch its parent's connection: closing it would end the parent's
    # session on the shared socket.
    if os.getpid() == pid:
        while slot:
            slot.pop().close()
