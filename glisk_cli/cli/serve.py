"""`glisk serve`: the HTTP health server, running until SIGTERM or Ctrl-C, with the web view
beside it when asked (`--dashboard`).

The command only gathers settings and the database handle; the server lives in the package
`glisk_cli.serve`, imported when the command runs so that `glisk --help` stays free of SQLAlchemy
and Prometheus.
"""

from __future__ import annotations

import ipaddress
from functools import partial
from typing import TYPE_CHECKING, Annotated

import typer

from glisk_cli.cli import context
from glisk_cli.errors import InvalidInput

if TYPE_CHECKING:
    from glisk_cli.db import Database
    from glisk_cli.serve.dashboard import Dashboard
    from glisk_cli.serve.metrics import TokenMetrics

HostOption = Annotated[
    str | None,
    typer.Option("--host", help="Address to listen on (default: HOST, else 127.0.0.1)."),
]
PortOption = Annotated[
    int | None,
    typer.Option(
        "--port", min=0, max=65535, help="Port to listen on, 0 for any free one (default: PORT)."
    ),
]
DashboardOption = Annotated[
    bool,
    typer.Option(
        "--dashboard",
        help="Also serve a read-only web view of the pipeline at / (off a loopback address only "
        "with GLISK_DASHBOARD_PASSWORD, asked for by HTTP basic auth).",
    ),
]


def serve(
    host: HostOption = None, port: PortOption = None, dashboard: DashboardOption = False
) -> None:
    """Serve /health, /readyz, /livez and /metrics over HTTP until SIGTERM or Ctrl-C.

    /health and /readyz: 200 while PostgreSQL answers SELECT 1, else 503.
    /livez: 200 while the process runs. /metrics: Prometheus text.
    It starts even while the database is down, and follows it when it comes back.
    With --dashboard, / is a web view of the pipeline, workers, failures and tokens.
    """
    from glisk_cli.serve import app as health_app

    settings = context.settings()
    host = settings.host if host is None else host
    password = settings.glisk_dashboard_password
    if dashboard and password is None and not is_loopback(host):
        raise InvalidInput(
            f"the dashboard listens on {host} only with a password: set GLISK_DASHBOARD_PASSWORD",
            hint="or listen on a loopback address: --host 127.0.0.1",
        )
    # With no DATABASE_URL this starts the embedded server; nothing connects yet, so an
    # unreachable database does not stop start-up.
    database = context.database().for_health_checks()
    try:
        health_app.run(
            database.engine,
            host=host,
            port=settings.port if port is None else port,
            database=database.masked_url,
            cors_origins=settings.cors_origins,
            access_log=context.debug or settings.log_level in ("DEBUG", "TRACE"),
            token_metrics=partial(read_token_metrics, database),
            dashboard=_dashboard(None if password is None else password.get_secret_value())
            if dashboard
            else None,
        )
    finally:
        database.dispose()
        if dashboard:
            context.database().dispose()


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only: localhost or a loopback address."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name or 0.0.0.0, ::: reachable from elsewhere


def _dashboard(password: str | None) -> Dashboard:
    """The web view, reading through the command's own database handle (its pool and
    timeouts are the terminal's, not the health check's)."""
    from glisk_cli.cli.dashboard_reads import pipeline_reader, token_reader
    from glisk_cli.serve.dashboard import REFRESH_S, Dashboard

    database = context.database()
    pipeline = pipeline_reader(
        context.unit_of_work,
        context.schema_revision,
        url=database.masked_url,
        lease=database.policy.lease,
        interval=REFRESH_S,
    )
    token = token_reader(context.unit_of_work)
    return Dashboard(pipeline, token, password=password, refresh_seconds=REFRESH_S)


def read_token_metrics(database: Database) -> TokenMetrics:
    """One reading of the tokens for /metrics, from the same query as `glisk tokens stats`, and
    of each stage's controls, as `glisk stage list` reads them, in the same transaction.

    Runs in the health server's check thread, at most a few times a second however often
    /metrics is scraped; an unmigrated database raises, and the token metrics are left out.
    """
    from glisk_cli.pipeline import TokenStatus
    from glisk_cli.serve.metrics import StageMetrics, TokenMetrics
    from glisk_cli.uow import create_uow_factory

    with create_uow_factory(database)() as uow:
        stats = uow.tokens.stats()
        states = uow.stages.states()
    return TokenMetrics(
        by_status={status.value: figures.count for status, figures in stats.statuses.items()},
        expired_leases=stats.expired_leases,
        oldest_detected_age_seconds=stats.statuses[TokenStatus.DETECTED].oldest_age_seconds,
        stages=[
            StageMetrics(
                stage=state.stage,
                paused=state.paused,
                cooling_down=state.cooling_down,
                jobs_running=state.running,
                concurrency_limit=state.concurrency,
                rate_limit_per_second=None if state.rate is None else state.rate.per_second,
            )
            for state in states
        ],
    )
