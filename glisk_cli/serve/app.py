"""The health server's application: /health, /readyz, /livez, /metrics, and `run`.

`HealthApp` decides what each path answers — from the shared database check
(`glisk_cli.serve.check`, which explains why no request waits for the database) and the metrics
(`glisk_cli.serve.metrics`) — and `run` serves it on asyncio until SIGTERM or SIGINT. The HTTP
wire format and the connections are in `glisk_cli.serve.http`. With `--dashboard`, every other
path goes to the web view (`glisk_cli.serve.dashboard`); the health paths are answered first and
never ask for its password.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import gc
import resource
import signal
import socket
import time
from collections.abc import Sequence
from email.utils import formatdate
from functools import partial
from typing import TYPE_CHECKING, Any

from glisk_cli.errors import InvalidInput
from glisk_cli.logging import logger
from glisk_cli.serve.check import Outcome, SharedCheck, select_one
from glisk_cli.serve.http import (
    Connection,
    Request,
    Response,
    error_response,
    json_response,
    make_response,
)
from glisk_cli.serve.metrics import (
    CONTENT_TYPE,
    Metrics,
    TokenMetrics,
    TokenMetricsSource,
    no_token_metrics,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from glisk_cli.serve.dashboard import Dashboard

SHUTDOWN_GRACE_S = 1.0  # in-flight requests get this long after SIGTERM before being cut off
# loguru has no level between WARNING and ERROR. The listening line and "database is back" must
# show at the default LOG_LEVEL=WARNING (which keeps CLI commands quiet), so they get their own.
NOTICE = "NOTICE"


# -- the checks' state, in the logs -------------------------------------------------------------


class _StateLog:
    """Logs a check's state changes — not every failure — so a down database logs once."""

    def __init__(self, what: str, where: str, failure_level: str, *, announce: bool) -> None:
        self.what, self.where, self.failure_level = what, where, failure_level
        self.announce = announce  # log the first success too (at INFO)
        self.ok: bool | None = None
        self.since = time.monotonic()

    def record(self, outcome: Outcome[Any]) -> None:
        if outcome.ok == self.ok:
            return
        if not outcome.ok:
            detail = outcome.error or "unknown error"
            where = "" if self.where in detail else f" ({self.where})"
            logger.log(self.failure_level, f"{self.what} unavailable: {detail}{where}")
        elif self.ok is None:
            if self.announce:
                logger.info(f"{self.what} reachable ({self.where})")
        else:
            down = time.monotonic() - self.since
            logger.log(NOTICE, f"{self.what} reachable again after {down:.1f} s ({self.where})")
        self.ok, self.since = outcome.ok, time.monotonic()


# -- the application ----------------------------------------------------------------------------


HEALTHY = json_response(200, "OK", {"status": "healthy"})
UNHEALTHY = json_response(
    503,
    "Service Unavailable",
    {
        "status": "unhealthy",
        "error": {"code": "database_unavailable", "message": "database is unavailable"},
    },
)
ALIVE = json_response(200, "OK", {"status": "alive"})
NOT_FOUND = error_response(404, "Not Found", "not_found", "no such path: try /health or /metrics")
NOT_ALLOWED = error_response(
    405,
    "Method Not Allowed",
    "method_not_allowed",
    "only GET and HEAD are allowed",
    "Allow: GET, HEAD\r\n",
)
_CHECKED = frozenset({b"/health", b"/readyz"})
_PATHS = _CHECKED | {b"/livez", b"/metrics"}


class HealthApp:
    """What every connection shares: the checks, the metrics, the open connections."""

    def __init__(
        self,
        database: SharedCheck[None],
        tokens: SharedCheck[TokenMetrics | None],
        metrics: Metrics,
        *,
        cors_origins: Sequence[str] = (),
        access_log: bool = False,
        max_connections: int = 4096,
        dashboard: Dashboard | None = None,
    ) -> None:
        self.database, self.tokens, self.metrics = database, tokens, metrics
        self.dashboard = dashboard
        self.cors_origins = frozenset(origin.encode("latin-1") for origin in cors_origins)
        self.access_log = access_log
        self.max_connections = max_connections
        self.connections: set[Connection] = set()
        self.stopping = False
        self.all_closed = asyncio.Event()
        self._date_second, self._date_header = -1, b""
        self._metrics_rendered: tuple[int, Response] | None = None

    def answer_now(self, request: Request) -> Response | None:
        """The response when it needs no waiting (nearly always); None when it must wait."""
        if request.path not in _PATHS:
            return NOT_FOUND if self.dashboard is None else self.dashboard.answer_now(request)
        if request.method not in (b"GET", b"HEAD"):
            return NOT_ALLOWED
        if request.path in _CHECKED:
            outcome = self.database.cached()
            return None if outcome is None else HEALTHY if outcome.ok else UNHEALTHY
        if request.path == b"/livez":
            return ALIVE
        fresh = self.database.cached() is not None and self.tokens.cached() is not None
        return self.metrics_response() if fresh else None

    async def answer(self, request: Request) -> Response:
        """The response once the checks it needs have come back (≤ the check timeout), or the
        web view's page once it has read the database."""
        if request.path not in _PATHS:
            assert self.dashboard is not None  # answer_now answers every other path itself
            return await self.dashboard.answer(request)
        if request.path == b"/metrics":
            await asyncio.gather(self.database.get(), self.tokens.get())
            return self.metrics_response()
        return HEALTHY if (await self.database.get()).ok else UNHEALTHY

    def metrics_response(self) -> Response:
        """/metrics, rendered once per change of the metrics rather than once per scrape."""
        version = self.metrics.version
        if self._metrics_rendered is None or self._metrics_rendered[0] != version:
            body = self.metrics.render()
            self._metrics_rendered = (version, make_response(200, "OK", body, CONTENT_TYPE))
        return self._metrics_rendered[1]

    def date_header(self) -> bytes:
        now = time.time()
        if int(now) != self._date_second:
            self._date_second = int(now)
            self._date_header = f"Date: {formatdate(now, usegmt=True)}\r\n".encode()
        return self._date_header

    def forget(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if self.stopping and not self.connections:
            self.all_closed.set()


# -- running it ---------------------------------------------------------------------------------


def run(
    engine: Engine,
    *,
    host: str,
    port: int,
    database: str,
    cors_origins: Sequence[str] = (),
    access_log: bool = False,
    token_metrics: TokenMetricsSource = no_token_metrics,
    dashboard: Dashboard | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then finish in-flight requests and return.

    `database` names the database in logs (a masked URL). The caller owns `engine`, built with
    the health check's limits (`Database.for_health_checks`), and disposes of it afterwards.
    `dashboard`: the web view, answering every path that is not a health path.
    """
    try:
        logger.level(NOTICE)
    except ValueError:
        logger.level(NOTICE, no=31)
    # The interpreter's last garbage collection takes most of a second here, and the server has
    # nothing that needs it: skip it, so that SIGTERM exits well within 2 s.
    atexit.register(gc.freeze)
    metrics = Metrics()
    database_log = _StateLog("database", database, "ERROR", announce=True)
    tokens_log = _StateLog("token metrics", database, "WARNING", announce=False)

    def on_database(outcome: Outcome[None]) -> None:
        metrics.database_up.set(1 if outcome.ok else 0)
        if outcome.seconds is not None:
            metrics.check_seconds.observe(outcome.seconds)
        metrics.changed()
        database_log.record(outcome)

    def on_tokens(outcome: Outcome[TokenMetrics | None]) -> None:
        metrics.tokens.reading = outcome.value if outcome.ok else None
        metrics.changed()
        tokens_log.record(outcome)

    app = HealthApp(
        SharedCheck("database-check", partial(select_one, engine), on_database),
        SharedCheck("token-metrics", token_metrics, on_tokens),
        metrics,
        cors_origins=cors_origins,
        access_log=access_log,
        # Leave descriptors for the database connections, logs and the listening sockets.
        max_connections=max(64, min(_raise_file_limit() - 64, 16384)),
        dashboard=dashboard,
    )
    asyncio.run(_serve(app, host, port, database))


def _bind_hint(error: OSError) -> str:
    """What to do about a listening socket the system refused, by why it refused."""
    if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
        return "--host must be an address or name of this machine, such as 127.0.0.1 or 0.0.0.0"
    if error.errno == errno.EACCES:
        return "ports below 1024 need privileges: choose another with --port"
    return "is another server using that port? choose another with --host/--port"


async def _serve(app: HealthApp, host: str, port: int, database: str) -> None:
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(partial(Connection, app), host, port, backlog=1024)
    except OSError as exc:
        raise InvalidInput(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", hint=_bind_hint(exc)
        ) from None
    stop = asyncio.Event()
    # Our own handlers: SIGINT must stop the server cleanly (exit 0), not raise KeyboardInterrupt.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    urls = ", ".join(_url(sock.getsockname()) for sock in server.sockets)
    logger.log(NOTICE, f"listening on {urls} (database {database})")
    if app.dashboard is not None:
        guarded = "password required" if app.dashboard.guarded else "no password"
        logger.log(NOTICE, f"dashboard at {urls.split(', ')[0]}/ ({guarded})")
    background = {
        loop.create_task(app.database.get()),  # warm the pool and log the state right away
        loop.create_task(_expire_idle(app)),
    }
    await stop.wait()
    logger.info("stopping: finishing in-flight requests")
    app.stopping = True
    server.close()
    for connection in list(app.connections):
        connection.shutdown()
    if app.connections:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(app.all_closed.wait(), SHUTDOWN_GRACE_S)
    for connection in list(app.connections):
        connection.transport.abort()
    for task in background:
        task.cancel()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
    logger.info("stopped")


async def _expire_idle(app: HealthApp) -> None:
    # One sweep a second instead of a timer per connection: timers would cost every request.
    while True:
        await asyncio.sleep(1.0)
        now = time.monotonic()
        for connection in list(app.connections):
            connection.expire(now)


def _raise_file_limit() -> int:
    """Lift the soft open-files limit to the hard one (as Go does) and return the result."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return 65536 if soft == resource.RLIM_INFINITY else soft


def _url(address: tuple[Any, ...]) -> str:
    host, port = address[0], address[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
