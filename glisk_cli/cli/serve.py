"""`glisk serve`: the HTTP health server (DESIGN §9), running until SIGTERM or Ctrl-C.

The command only gathers settings and the engine; the server lives in `glisk_cli.health`, which is
imported when the command runs so that `glisk --help` stays free of SQLAlchemy and Prometheus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from glisk_cli.cli import context

if TYPE_CHECKING:
    from glisk_cli.health_metrics import TokenMetrics

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


def serve(host: HostOption = None, port: PortOption = None) -> None:
    """Serve /health, /readyz, /livez and /metrics over HTTP until SIGTERM or Ctrl-C.

    /health and /readyz: 200 while PostgreSQL answers SELECT 1, else 503.
    /livez: 200 while the process runs. /metrics: Prometheus text.
    It starts even while the database is down, and follows it when it comes back.
    """
    from glisk_cli import health
    from glisk_cli.redact import mask_url

    settings = context.settings()
    database = mask_url(context.database_url())  # with no DATABASE_URL this starts the embedded one
    engine = context.engine()  # connects lazily: an unreachable database does not stop start-up
    try:
        health.run(
            engine,
            host=settings.host if host is None else host,
            port=settings.port if port is None else port,
            database=database,
            cors_origins=settings.cors_origins,
            access_log=context.debug or settings.log_level in ("DEBUG", "TRACE"),
            token_metrics=read_token_metrics,
        )
    finally:
        engine.dispose()


def read_token_metrics() -> TokenMetrics:
    """One reading of the tokens for /metrics, from the same query as `glisk tokens stats`.

    Runs in the health server's check thread, at most a few times a second however often
    /metrics is scraped; an unmigrated database raises, and the token metrics are left out.
    """
    from glisk_cli.health_metrics import TokenMetrics

    with context.unit_of_work() as uow:
        stats = uow.tokens.stats()
    return TokenMetrics(
        by_status={status: figures["count"] for status, figures in stats["statuses"].items()},
        expired_leases=stats["leases"]["expired"],
        oldest_detected_age_seconds=stats["statuses"]["detected"]["oldest_age_seconds"],
    )
