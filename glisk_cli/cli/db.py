"""`glisk db …`: the database itself — schema migrations and verification, the embedded server."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from glisk_cli.cli import context
from glisk_cli.cli.output import (
    JsonOption,
    YesOption,
    confirm_or_refuse,
    emit,
    print_json,
    print_table,
    say,
)

if TYPE_CHECKING:
    from glisk_cli.embedded import EmbeddedServer
    from glisk_cli.errors import DatabaseUnavailable
    from glisk_cli.migrations import MigrationRun

app = typer.Typer(
    help="Manage the database: migrations, verification, the embedded server.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

# Relative revisions such as -1 look like options; these commands take them as arguments.
_REVISION_ARGS = {"ignore_unknown_options": True}


@app.command(context_settings=_REVISION_ARGS)
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target: head, a revision id, or +N.")] = "head",
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL instead of running it (no database).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Apply migrations up to REVISION (default: head). Safe to run from several places at once."""
    from glisk_cli import migrations

    if sql:
        migrations.upgrade_sql(revision, sys.stdout)
        return
    _report_run(migrations.upgrade(context.session_engine("migrating"), revision), as_json=as_json)


@app.command(context_settings=_REVISION_ARGS)
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target: base, a revision id, or -N.")],
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Revert migrations down to REVISION. Destroys data: asks first unless --yes."""
    from glisk_cli import migrations

    engine = context.session_engine("migrating")
    confirm_or_refuse(
        f"Downgrade the schema at {_masked_url()} to {revision}? Dropped tables lose their data.",
        yes=yes,
    )
    _report_run(migrations.downgrade(engine, revision), as_json=as_json)


@app.command()
def current(as_json: JsonOption = False) -> None:
    """The revision the database is at, and whether that is the head."""
    from glisk_cli import migrations

    with context.engine().connect() as connection:
        revisions = migrations.current_revisions(connection)
    head = migrations.head_revision()
    at_head = revisions == (head,)
    report = {"current": ", ".join(revisions) or None, "head": head, "at_head": at_head}
    emit(report, as_json=as_json, title="schema revision")


@app.command()
def history(as_json: JsonOption = False) -> None:
    """Every migration, newest first (reads the scripts only; needs no database)."""
    from glisk_cli import migrations

    entries = migrations.history()
    if as_json:
        print_json(entries)
        return
    # A message's first line: a table row is one line.
    rows = [{**entry, "message": (entry["message"] or "").split("\n")[0]} for entry in entries]
    print_table(rows, ["revision", "down_revision", "is_head", "message"])


@app.command()
def verify(as_json: JsonOption = False) -> None:
    """Check the live schema against the migrations: exit 7 when behind, 8 on drift."""
    from glisk_cli.errors import SchemaDrift, SchemaNotAtHead
    from glisk_cli.verify import verify as verify_schema

    report = verify_schema(context.engine())
    if as_json:
        print_json(report.as_dict())
    else:
        findings = [vars(finding) for finding in report.findings]
        if findings:
            emit(findings, as_json=False, columns=["object", "problem", "expected", "actual"])
        at = report.current or "no revision"
        say(f"schema {report.status}: at {at}, head {report.head}")
    if report.status == "pending":
        names = ", ".join(f.object for f in report.findings)
        raise SchemaNotAtHead(f"schema is not at head ({names})", hint="run: glisk db upgrade")
    if report.status == "drift":
        raise SchemaDrift(f"schema drift: {len(report.findings)} finding(s)")


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Where the database is, whether it answers, its version and schema revision.

    Starts the embedded server when DATABASE_URL is unset. The report is printed even when the
    database cannot be reached; the exit code is then 3.
    """
    report, problem = _status_report()
    if as_json:
        emit(report, as_json=True)
    else:
        from glisk_cli.cli import humanize
        from glisk_cli.cli.output import print_record

        # Long values (a socket path in the URL, say) are shortened to fit; --json has them whole.
        shown = {key: humanize.middle(_text(value), 60) for key, value in report.items()}
        print_record(shown, title="glisk database", fold=False)
    if problem:
        raise problem


@app.command()
def grants(
    worker: Annotated[
        str | None, typer.Option("--worker", help="The role workers connect as.")
    ] = None,
    reader: Annotated[
        str | None, typer.Option("--reader", help="The role dashboards and health checks use.")
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Run them now (connected as the owner role).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Print the GRANT statements that give --worker and --reader exactly what their commands
    need (or run them with --apply, which refuses with exit 5 a role that does not exist)."""
    from glisk_cli import grants as least_privilege
    from glisk_cli.errors import InvalidInput

    if worker is None and reader is None:
        raise InvalidInput("name a role: --worker ROLE and/or --reader ROLE")
    database = context.database()
    name = database.engine.url.database or ""
    statements = least_privilege.grant_statements(name, worker, reader)
    if apply:
        named = [role for role in (worker, reader) if role is not None]
        least_privilege.apply(database.engine, statements, named)
    if as_json:
        print_json(
            {"statements": [s for s in statements if not s.startswith("--")], "applied": apply}
        )
        return
    sys.stdout.write("".join(f"{statement}\n" for statement in statements))
    if apply:
        say(f"applied {sum(not s.startswith('--') for s in statements)} statements")


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
def stop(
    force: Annotated[
        bool, typer.Option("--force", help="Stop it even while other sessions are connected.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Stop the embedded PostgreSQL server (no-op when it is not running). Refused (exit 6)
    while other sessions are connected, unless --force: a running glisk work or glisk top
    would start it again within a second."""
    from glisk_cli.errors import Conflict

    server = _embedded_or_refuse("stop")
    if not force and (connected := server.clients()):
        raise Conflict(
            f"{connected} other session(s) are connected to the embedded server; a running "
            "glisk work, top or serve would start it again at once",
            hint="stop them first, or pass --force",
        )
    was_running = server.stop()
    if as_json:
        report = {"stopped": was_running, "running": False, "data_dir": str(server.data_dir)}
        emit(report, as_json=True)
    else:
        say("embedded PostgreSQL stopped" if was_running else "embedded PostgreSQL was not running")


def _report_run(run: MigrationRun, *, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "before": ", ".join(run.before) or None,
                "after": ", ".join(run.after) or None,
                "applied": [vars(step) for step in run.steps],
                "seconds": round(run.seconds, 3),
            }
        )
        return
    for step in run.steps:
        sys.stdout.write(f"{step.direction}d {step.revision}: {step.message}\n")
    at = ", ".join(run.after) or "base (empty)"
    if not run.steps:
        sys.stdout.write(f"nothing to do: already at {at}\n")
    sys.stdout.write(f"database at {at} ({run.seconds:.2f}s)\n")


def _masked_url() -> str:
    return context.database().masked_url


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
    from glisk_cli.db.handle import server_version
    from glisk_cli.embedded import embedded_server
    from glisk_cli.errors import DatabaseUnavailable
    from glisk_cli.models import SCHEMA_REVISION

    settings = context.settings()
    embedded = None if settings.database_url_value else embedded_server(settings.glisk_data_dir)
    problem = None
    report: dict[str, Any] = {
        "mode": "embedded" if embedded else "external",
        "url": None,
        "libpq_url": None,
        "data_dir": str(embedded.data_dir) if embedded else None,
        "running": None,
        "pid": None,
        "server_version": None,
        "reachable": False,
        "revision": None,
        "head": SCHEMA_REVISION,
        "pooler": settings.glisk_pooler,
        "direct_url": None,
    }
    try:
        report["url"] = _masked_url()
        report["libpq_url"] = context.database().masked_libpq_url
        report["direct_url"] = context.database().masked_direct_url
        report["server_version"] = server_version(context.engine())
        report["reachable"] = True
        report["revision"] = context.schema_revision()
    except DatabaseUnavailable as error:
        problem = error
    if embedded:
        state = embedded.state()
        report.update(running=state.running, pid=state.pid)
    return report, problem


def _text(value: Any) -> str:
    return "-" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
