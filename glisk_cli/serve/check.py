"""The database check behind /health, /readyz and /metrics, shared by every request.

The database is never on a request's path: a `SharedCheck` runs `SELECT 1` in one worker thread
at a time, bounded to 1 s, and requests within the next second reuse its outcome. Under steady
traffic the outcome is refreshed once it is half a second old while requests go on being answered
from it, so no request waits for a check and PostgreSQL sees about two checks a second whatever
the request rate. Only after a quiet second does a request wait (at most 1 s) for a fresh check,
and while the database is failing, requests get the failure at once while the re-check runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from glisk_cli.db.handle import HEALTH_CHECK_TIMEOUT
from glisk_cli.errors import GliskError
from glisk_cli.redact import redact

if TYPE_CHECKING:
    from sqlalchemy import Engine

T = TypeVar("T")

# A check slower than this means "database unavailable"; the engine a check runs on gives up
# connecting and querying in about as long (`Database.for_health_checks`).
CHECK_TIMEOUT_S = HEALTH_CHECK_TIMEOUT.total_seconds()
CACHE_S = 1.0  # how long one check's outcome answers requests
REFRESH_AFTER_S = 0.5  # under traffic, re-check this early so that no request waits for a check


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one check found. `error` is for the logs only: it may name the host."""

    ok: bool
    value: T | None
    error: str | None
    seconds: float | None  # None: no check ran (the previous one had not come back)
    finished_at: float


class SharedCheck(Generic[T]):
    """Runs `probe` in a worker thread — never two at once — and shares and caches its outcome.

    A probe that has not answered within `timeout` makes a failed outcome. Its thread is left to
    finish (a thread cannot be interrupted), and no other probe starts until it has.
    """

    def __init__(
        self,
        name: str,
        probe: Callable[[], T],
        on_outcome: Callable[[Outcome[T]], None],
        *,
        timeout: float = CHECK_TIMEOUT_S,
        max_age: float = CACHE_S,
        refresh_after: float = REFRESH_AFTER_S,
    ) -> None:
        self.name = name
        self._probe = probe
        self._on_outcome = on_outcome
        self._timeout = timeout
        self._max_age = max_age
        self._refresh_after = refresh_after
        self._outcome: Outcome[T] | None = None
        self._refresh: asyncio.Task[Outcome[T]] | None = None
        self._running: asyncio.Future[T] | None = None

    def cached(self) -> Outcome[T] | None:
        """The last outcome while it is young enough to answer with (refreshing it early)."""
        outcome = self._outcome
        if outcome is None:
            return None
        age = time.monotonic() - outcome.finished_at
        if age >= self._max_age:
            # A failure stays the answer while the check that may overturn it runs: a database
            # that hangs must not make every request hang with it. A success is never stretched.
            return outcome if not outcome.ok and self._refresh is not None else None
        if age >= self._refresh_after and self._refresh is None:
            self._start_refresh()
        return outcome

    async def get(self) -> Outcome[T]:
        """A current outcome: the cached one, or the one all waiters share from a new check."""
        outcome = self.cached()
        if outcome is not None:
            return outcome
        refresh = self._refresh or self._start_refresh()
        # shield: a client hanging up must not cancel the check that others are waiting for.
        return await asyncio.shield(refresh)

    def _start_refresh(self) -> asyncio.Task[Outcome[T]]:
        self._refresh = asyncio.get_running_loop().create_task(self._check())
        return self._refresh

    async def _check(self) -> Outcome[T]:
        started = time.monotonic()
        if self._running is not None and not self._running.done():
            # Waiting on it again would make every request slow for as long as the database is.
            error = "the previous check has not come back yet"
            outcome: Outcome[T] = Outcome(False, None, error, None, started)
        else:
            self._running = running = self._in_thread()
            try:
                value = await asyncio.wait_for(asyncio.shield(running), self._timeout)
                outcome = Outcome(True, value, None, time.monotonic() - started, time.monotonic())
            except TimeoutError:
                error = f"no answer within {self._timeout:g} s"
                outcome = Outcome(False, None, error, self._timeout, time.monotonic())
            except Exception as exc:
                error = describe_error(exc)
                outcome = Outcome(False, None, error, time.monotonic() - started, time.monotonic())
        self._outcome, self._refresh = outcome, None
        self._on_outcome(outcome)
        return outcome

    def _in_thread(self) -> asyncio.Future[T]:
        return in_daemon_thread(f"glisk-{self.name}", self._probe)


def in_daemon_thread(name: str, work: Callable[[], T]) -> asyncio.Future[T]:
    """`work()` in a thread of its own, its result or error in the returned future.

    A daemon thread per call (a few a second at most): a probe stuck in the driver must not keep
    the process alive after SIGTERM, as an executor's worker thread would.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    # Nobody may be waiting any more when a timed-out probe finally fails: mark the error
    # retrieved, or asyncio logs "exception was never retrieved".
    future.add_done_callback(lambda done: done.cancelled() or done.exception())

    def settle(value: Any, error: Exception | None) -> None:
        if not future.done():
            future.set_result(value) if error is None else future.set_exception(error)

    def run() -> None:
        try:
            result: tuple[Any, Exception | None] = (work(), None)
        except Exception as exc:
            result = (None, exc)
        with contextlib.suppress(RuntimeError):  # the loop has closed: we are shutting down
            loop.call_soon_threadsafe(settle, *result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def describe_error(exc: BaseException) -> str:
    """One log line about a failed probe: password masked, host and driver text kept."""
    if isinstance(exc, GliskError):
        return redact(exc.message)
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {redact(lines[0])}" if lines else type(exc).__name__


def select_one(engine: Engine) -> None:
    """The health check itself: a pooled connection answers `SELECT 1`."""
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1").scalar_one()
