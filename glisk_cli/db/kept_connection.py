"""One pooled connection kept out of the pool between Units of Work (docs/architecture.md, "The
workers' path below the ORM").

A worker runs Unit of Work after Unit of Work, each a short transaction, and SQLAlchemy's
checkout and check-in would be the largest part of its client work beyond the driver's own. So
the connection a transaction ended cleanly on is kept here, and the next transaction (of any
thread) takes it without a checkout. At most one is kept; the pool still hands out every other
connection and remains the only place they are made. When another user of the engine fills the
pool, the kept connection goes back at once, so it never makes anyone wait.

What the pool would do on check-in, the Unit of Work did already: its transaction ended with
COMMIT or ROLLBACK, and a connection that broke or is mid-transaction goes back to the pool
instead (`PooledTransaction.close`). What a kept connection misses is the pool's own care on
checkout (pool events, a ping, recycling by age, invalidation of a whole pool after a
disconnect): glisk sets no recycling, a Database that pings keeps nothing, and a kept
connection that died fails its Unit of Work's first statement, which is retried once on a fresh
connection.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Engine, event
from sqlalchemy.pool import Pool, PoolProxiedConnection, QueuePool


class KeptConnection:
    """A slot for one checked-out connection of `engine`'s pool, which holds `capacity`
    connections at most (pool size plus overflow), shared by the engine's Units of Work."""

    def __init__(self, engine: Engine, capacity: int) -> None:
        self._engine = engine
        self._capacity = capacity
        self._slot: list[PoolProxiedConnection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # A Database dropped without dispose() still checks its kept connection back in.
        weakref.finalize(self, _check_in, self._slot, self._lock, self._pid)
        event.listen(engine, "checkout", _on_checkout(weakref.ref(self)))

    def take(self) -> PoolProxiedConnection:
        """The kept connection, or else one from the pool (which may raise psycopg's errors)."""
        if self._slot and os.getpid() == self._pid:
            with self._lock:
                if self._slot:
                    return self._slot.pop()
        return self._engine.raw_connection()

    def keep(self, pooled: PoolProxiedConnection, pool: Pool) -> None:
        """Keep `pooled`, taken from `pool` and idle between transactions, for the next Unit of
        Work; back to its pool when one is kept already. When the engine has another pool by
        now (the Database was disposed meanwhile), close it: nobody checks out of the old one."""
        if pool is not self._engine.pool:
            pooled.invalidate()  # closes the driver's connection and checks the record in
            return
        if os.getpid() == self._pid:
            with self._lock:
                if not self._slot:
                    self._slot.append(pooled)
                    return
        pooled.close()

    def close(self) -> None:
        """Check the kept connection back in (before the pool is disposed)."""
        _check_in(self._slot, self._lock, self._pid)

    def _give_way(self) -> None:
        """Someone just checked a connection out: if that filled the pool, give the kept one
        back, so that the next checkout finds it instead of waiting for the pool's timeout."""
        if self._slot and cast(QueuePool, self._engine.pool).checkedout() >= self._capacity:
            self.close()


def _on_checkout(kept: weakref.ref[KeptConnection]) -> Callable[..., None]:
    def on_checkout(*_: Any) -> None:
        if (alive := kept()) is not None:
            alive._give_way()

    return on_checkout


def _check_in(slot: list[PoolProxiedConnection], lock: threading.Lock, pid: int) -> None:
    # A forked child must not touch its parent's connection (closing it would end the parent's
    # session on the shared socket), nor the lock, which another thread may have held at fork.
    if os.getpid() != pid:
        return
    with lock:
        kept = slot[:]
        slot.clear()
    for pooled in kept:
        pooled.close()
