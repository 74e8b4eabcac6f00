"""`glisk work STAGE -- COMMAND`: run a stage's workers. The command checks its input, builds
the runner (`glisk_cli.work`) on the configured database, shows progress and prints the
summary; the loop itself lives in the library, where Python workers reach it too."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from glisk_cli.cli import context, values
from glisk_cli.cli.output import JsonOption, emit
from glisk_cli.durations import format_duration
from glisk_cli.pipeline import MAX_BATCH, StageName
from glisk_cli.work.options import MAX_CONCURRENCY, MAX_TIMEOUT, MIN_LEASE, WorkOptions

if TYPE_CHECKING:
    from glisk_cli.work.report import Report


def work(
    stage: Annotated[StageName, typer.Argument(help="Which stage's tokens to work on.")],
    command: Annotated[
        list[str] | None,
        typer.Argument(help="After --: the command to run per token, and its arguments."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=MAX_CONCURRENCY, help="Jobs at a time.")
    ] = WorkOptions.concurrency,
    lease: Annotated[
        str,
        typer.Option(
            "--lease",
            help=f"Lease length, renewed every third of it (≥ {format_duration(MIN_LEASE)}).",
        ),
    ] = format_duration(WorkOptions.lease),
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout", help=f"Kill a job after this long (≤ {format_duration(MAX_TIMEOUT)})."
        ),
    ] = None,
    grace: Annotated[
        str, typer.Option("--grace", help="On SIGTERM/SIGINT, how long running jobs get.")
    ] = format_duration(WorkOptions.grace),
    batch: Annotated[
        int,
        typer.Option("--batch", min=1, max=MAX_BATCH, help="Tokens per run of the command."),
    ] = WorkOptions.batch,
    worker: Annotated[
        str | None, typer.Option("--worker", help="Who holds the leases (default: hostname:pid).")
    ] = None,
    drain: Annotated[
        bool, typer.Option("--drain", help="Exit once the stage has no work left.")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", min=0, max=65535, help="Serve Prometheus metrics here."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run COMMAND once per claimed token (the token as JSON on stdin; exit 0 and print the
    stage's result fields as JSON to succeed), keeping its lease alive, retrying failures
    with backoff and recording every attempt. SIGTERM or Ctrl-C stops claiming and lets
    running attempts finish within --grace; a second one stops them at once."""
    from glisk_cli.logging import configure_logging
    from glisk_cli.policy import default_worker
    from glisk_cli.work import run_until_stopped
    from glisk_cli.work.metrics import RunnerMetrics
    from glisk_cli.work.programs import Command
    from glisk_cli.work.report import Report
    from glisk_cli.work.signals import exit_status

    # Everything is checked before anything is claimed.
    options = WorkOptions(
        stage=stage,
        worker=worker or default_worker(),
        concurrency=concurrency,
        lease=_duration(lease, "--lease"),
        timeout=None if timeout is None else _duration(timeout, "--timeout"),
        grace=_grace(grace),
        batch=batch,
        drain=drain,
    )
    program = Command(command or [], batched=batch > 1)
    settings = context.settings()
    live = sys.stderr.isatty()
    if not live:  # a line per attempt is the progress: shown at the default WARNING level too
        configure_logging(
            "DEBUG" if context.debug else settings.log_level,
            json_lines=settings.app_env == "production",
            progress_from="glisk_cli.work",
        )
    metrics = None
    if metrics_port is not None:
        metrics = RunnerMetrics(stage.value)
        metrics.serve(metrics_port, settings.host)
    report = Report(stage.value, options.worker, metrics)
    uow_factory = context.uow_factory()  # refuses (exit 7) a database not at head
    with _live_line(report) if live else contextlib.nullcontext() as on_turn:
        summary, stop_reason = run_until_stopped(
            context.database(), uow_factory, program, options, report=report, on_turn=on_turn
        )
    if as_json:
        emit(summary, as_json=True)
    else:
        sys.stdout.write(" · ".join(f"{key} {value}" for key, value in summary.items()) + "\n")
    code = exit_status(stop_reason)
    if code:
        raise typer.Exit(code)
    if drain and summary["failed"]:
        from glisk_cli.errors import TokensFailed

        raise TokensFailed(
            f"drained, but {summary['failed']} token(s) failed for good",
            hint="see: glisk tokens list --status failed",
        )


@contextlib.contextmanager
def _live_line(report: Report) -> Iterator[Callable[[Report], None]]:
    """A Rich status line on stderr, redrawn after every loop turn, gone at exit."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    with Live(Text(_status(report)), console=Console(stderr=True), transient=True) as live:
        yield lambda current: live.update(Text(_status(current)))


def _status(report: Report) -> str:
    """The live line: claimed, running, succeeded, failed, retried, rate, oldest waiting."""
    from glisk_cli.cli import humanize

    counts = report.counts
    minutes = max(report.clock() - counts.started, 1.0) / 60
    line = (
        f"{report.stage}: claimed {counts.claimed} · running {report.running} · "
        f"succeeded {counts.succeeded} · failed {counts.failed} · "
        f"retried {counts.retried} · {counts.succeeded / minutes:.1f}/min"
    )
    if report.backlog is not None:
        line += f" · waiting {report.backlog.waiting + report.backlog.delayed}"
        if report.backlog.oldest_waiting is not None:
            age = humanize.now() - report.backlog.oldest_waiting
            line += f" (oldest {humanize.duration(age)})"
    if report.database_down_since is not None:
        down = report.clock() - report.database_down_since
        line += f" · database unreachable for {humanize.duration(down)}"
    return line


def _duration(text: str, option: str) -> timedelta:
    try:
        parsed = values.duration(text)
    except typer.BadParameter as error:
        raise typer.BadParameter(error.message, param_hint=option) from None
    assert parsed is not None
    return parsed


def _grace(text: str) -> timedelta:
    try:
        parsed = values.delay(text)
    except typer.BadParameter as error:
        raise typer.BadParameter(error.message, param_hint="--grace") from None
    assert parsed is not None
    return parsed
