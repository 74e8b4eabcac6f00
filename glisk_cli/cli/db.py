"""`glisk db …`: the database itself — the embedded server's lifecycle and status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from glisk_cli.cli import context
from glisk_cli.cli.output import JsonOption, emit, say

if TYPE_CHECKING:
    from glisk_cli.embedded import EmbeddedServer
    from glisk_cli.errors import DatabaseUnavailable

app = typer.Typer(help="Manage the database: embedded server, status.", no_args_is_help=True)


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Where the database is, whether it answers, and its version (starts the embedded server).

    The report is printed even when the database cannot be reached; the exit code is then 3.
    """
    report, problem = _status_report()
    emit(report, as_json=as_json, title="glisk database")
    if problem:
        raise problem


@app.command()
def start(as_json: JsonOption = False) -> None:
    """Start the embedded PostgreSQL server (no-op when it already runs)."""
    server = _embedded_or_refuse("start")
    already = server.state().running
    server.ensure_running()
    state = server.state()
    if not as_json:
        verb = "already running" if already else "started"
        say(f"embedded PostgreSQL {verb} (pid {state.pid}), data in {server.data_dir}")
    else:
        emit(_status_report()[0], as_json=True)


@app.command()
def stop(as_json: JsonOption = False) -> None:
    """Stop the embedded PostgreSQL server (no-op when it is not running)."""
    server = _embedded_or_refuse("stop")
    was_running = server.stop()
    if as_json:
        report = {"stopped": was_running, "running": False, "data_dir": str(server.data_dir)}
        emit(report, as_json=True)
    else:
        say("embedded PostgreSQL stopped" if was_running else "embedded PostgreSQL was not running")


def _embedded_or_refuse(verb: str) -> EmbeddedServer:
    from glisk_cli.embedded import embedded_server
    from glisk_cli.errors import InvalidInput

    settings = context.settings()
    if settings.database_url_value:
        raise InvalidInput(
            f"DATABASE_URL is set, so glisk uses that server and has no embedded server to {verb}",
            hint="unset DATABASE_URL to use the embedded server",
        )
    return embedded_server(settings.glisk_data_dir)


def _status_report() -> tuple[dict[str, Any], DatabaseUnavailable | None]:
    """The status document, and the reason the database did not answer (if it did not)."""
    from glisk_cli.database import server_version
    from glisk_cli.embedded import embedded_server
    from glisk_cli.errors import DatabaseUnavailable
    from glisk_cli.redact import mask_url

    settings = context.settings()
    embedded = None if settings.database_url_value else embedded_server(settings.glisk_data_dir)
    problem = None
    report: dict[str, Any] = {
        "mode": "embedded" if embedded else "external",
        "url": None,
        "data_dir": str(embedded.data_dir) if embedded else None,
        "running": None,
        "pid": None,
        "server_version": None,
        "reachable": False,
    }
    try:
        report["url"] = mask_url(context.database_url())
        report["server_version"] = server_version(context.engine())
        report["reachable"] = True
    except DatabaseUnavailable as error:
        problem = error
    if embedded:
        state = embedded.state()
        report.update(running=state.running, pid=state.pid)
    return report, problem
