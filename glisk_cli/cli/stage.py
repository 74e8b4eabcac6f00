"""`glisk stage …`: fleet-wide flow control — see each stage's controls, pause and resume a
stage, set its concurrency and rate limits, cool it down. Stored in the database and enforced
by every claim, on every host (docs/architecture.md, "Flow control in the claim")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from glisk_cli.cli import context, values
from glisk_cli.cli.output import JsonOption, emit, print_json, say
from glisk_cli.durations import moment
from glisk_cli.pipeline import StageName

if TYPE_CHECKING:
    from glisk_cli.flow import StageState
    from glisk_cli.repositories.token_records import Backlog

app = typer.Typer(
    help="Pause, resume, limit and cool down a stage, fleet-wide.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

T = TypeVar("T")

StageArgument = Annotated[StageName, typer.Argument(help="generation, upload or reveal.")]


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """Each stage: running, paused or cooling down; its limits and what they hold back now;
    its tokens waiting and in flight."""
    with context.unit_of_work() as uow:
        shown = [(state, uow.tokens.backlog(state.stage)) for state in uow.stages.states()]
    documents = [stage_document(state, backlog) for state, backlog in shown]
    if as_json:
        emit(documents, as_json=True)
        return
    from glisk_cli.cli.output import print_table

    rows = [_row(state, backlog) for state, backlog in shown]
    print_table(rows, ["stage", "state", "jobs", "rate", "waiting", "in flight", "why"])


@app.command()
def pause(
    stage: StageArgument,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why: shown by `stage list` and `tokens why`.")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Resume by itself then: a time (ISO 8601) or a duration."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Start no job of STAGE anywhere until `glisk stage resume` (or --until). Running jobs
    finish, renew and advance as usual; mints keep being recorded."""
    until_at = _time_or_duration(until)
    with context.unit_of_work() as uow:
        uow.stages.pause(stage, reason=reason, until=until_at)
        state = uow.stages.state(stage)
    _done(state, as_json, f"paused {stage.value}")


@app.command()
def resume(stage: StageArgument, as_json: JsonOption = False) -> None:
    """Let STAGE start jobs again (waiting runners wake at once)."""
    with context.unit_of_work() as uow:
        uow.stages.resume(stage)
        state = uow.stages.state(stage)
    _done(state, as_json, f"resumed {stage.value}")


@app.command()
def limit(
    stage: StageArgument,
    concurrency: Annotated[
        str | None,
        typer.Option(
            "--concurrency",
            help="At most N jobs of STAGE at once across the fleet (a job: one token, or one "
            "batch); none lifts it.",
        ),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option("--rate", help="At most N job starts per second or minute: 10/s, 30/m, none."),
    ] = None,
    burst: Annotated[
        int | None,
        typer.Option("--burst", min=1, help="Starts the rate allows at once (default 1)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Set or lift STAGE's fleet-wide limits. Running jobs are never stopped: under a lower
    limit, no job starts until fewer than the limit run."""
    from glisk_cli.flow import parse_rate
    from glisk_cli.repositories.stage_controls import UNCHANGED

    if concurrency is None and rate is None and burst is None:
        raise typer.BadParameter("give --concurrency, --rate or --burst")
    changes: dict[str, Any] = {"burst": burst}
    if concurrency is not None:
        changes["concurrency"] = _none_or(concurrency, _positive_int)
    if rate is not None:
        changes["rate"] = _none_or(rate, parse_rate)
    with context.unit_of_work() as uow:
        uow.stages.limit(
            stage,
            concurrency=changes.get("concurrency", UNCHANGED),
            rate=changes.get("rate", UNCHANGED),
            burst=burst,
        )
        state = uow.stages.state(stage)
    _done(state, as_json, f"limits of {stage.value}: {_limits(state)}")


@app.command()
def cooldown(
    stage: StageArgument,
    duration: Annotated[str, typer.Argument(help="How long: 30s, 5m (0s ends a cooldown).")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Start no job of STAGE anywhere for DURATION, as when a service answers 429."""
    from glisk_cli.durations import parse_duration

    try:
        delay = parse_duration(duration)  # its bounds are the cooldown's (uow.stages.cool_down)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    with context.unit_of_work() as uow:
        uow.stages.cool_down(stage, delay, reason=reason or "by hand")
        state = uow.stages.state(stage)
    _done(state, as_json, f"{stage.value} cools down until {_at(state.cooldown_until)}")


def stage_document(state: StageState, backlog: Backlog | None = None) -> dict[str, Any]:
    """A stage's controls as one JSON object (`glisk stage list --json`, README)."""
    blocked = state.blocked()
    document: dict[str, Any] = {
        "stage": state.stage,
        "state": state.state,
        "paused": {
            "reason": state.pause_reason,
            "since": state.paused_at,
            "until": state.paused_until,
        }
        if state.paused
        else None,
        "cooldown": {"until": state.cooldown_until, "reason": state.cooldown_reason}
        if state.cooling_down
        else None,
        "concurrency": {
            "limit": state.concurrency,
            "running": state.running,
            "holders": list(state.holders),
        },
        "rate": {
            "limit": None if state.rate is None else str(state.rate),
            "burst": state.burst,
            "bucket": None if state.bucket is None else round(state.bucket, 3),
            "next_start_at": state.next_start_at,
        },
        "blocked": None
        if blocked is None
        else {"reason": blocked.reason, "message": blocked.message, "until": blocked.until},
    }
    if backlog is not None:
        document |= {"waiting": backlog.waiting + backlog.delayed, "in_flight": backlog.in_flight}
    return document


def state_word(state: StageState) -> str:
    """The stage's state in a table cell: running, paused or cooling."""
    return "cooling" if state.cooling_down else state.state


def held_back(state: StageState) -> str:
    """What keeps the stage from starting a job now, for people (`stage list`, `glisk top`):
    times relative to the database's clock, to the second; "" when a job may start."""
    from glisk_cli.cli.humanize import relative

    if state.paused:
        until = state.paused_until
        words = "paused" if until is None else f"paused, resumes {relative(until, state.now)}"
        return f"{words}: {state.pause_reason}" if state.pause_reason else words
    if state.cooling_down and state.cooldown_until is not None:
        words = f"cooling down, ends {relative(state.cooldown_until, state.now)}"
        return f"{words}: {state.cooldown_reason}" if state.cooldown_reason else words
    blocked = state.blocked()
    if blocked is None:
        return ""
    if blocked.reason == "at_limit":
        by = f", held by {', '.join(state.holders)}" if state.holders else ""
        return f"at its concurrency limit{by}"
    if blocked.until is not None:
        return f"rate-limited, next start {relative(blocked.until, state.now)}"
    return blocked.reason


def _row(state: StageState, backlog: Backlog) -> dict[str, Any]:
    jobs = f"{state.running}" + ("" if state.concurrency is None else f"/{state.concurrency}")
    rate = "-" if state.rate is None else f"{state.rate} (burst {state.burst})"
    return {
        "stage": state.stage,
        "state": state_word(state),
        "jobs": jobs,
        "rate": rate,
        "waiting": backlog.waiting + backlog.delayed,
        "in flight": backlog.in_flight,
        "why": held_back(state),
        "_style": None if state.blocked() is None else "yellow",
    }


def _done(state: StageState, as_json: bool, message: str) -> None:
    if as_json:
        print_json(stage_document(state))
    else:
        say(message)


def _limits(state: StageState) -> str:
    concurrency = (
        "no concurrency limit"
        if state.concurrency is None
        else (f"at most {state.concurrency} jobs at once")
    )
    rate = "no rate limit" if state.rate is None else f"{state.rate}, burst {state.burst}"
    return f"{concurrency}, {rate}"


def _at(when: datetime | None) -> str:
    return "now" if when is None else moment(when)


def _none_or(text: str, parse: Callable[[str], T]) -> T | None:
    """`none` lifts a limit; anything else is the limit, parsed."""
    return None if text.strip().lower() == "none" else parse(text)


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise typer.BadParameter(f"--concurrency {text!r} is not a whole number or none") from None
    if number < 1:
        raise typer.BadParameter("--concurrency must be at least 1 (to stop a stage, pause it)")
    return number


def _time_or_duration(text: str | None) -> datetime | None:
    """--until: an ISO 8601 time, or a duration from now."""
    if text is None:
        return None
    from glisk_cli.durations import parse_duration

    try:
        delay = parse_duration(text)
    except ValueError:
        return values.timestamp(text)
    if delay <= timedelta(0):
        raise typer.BadParameter("--until must be in the future")
    from glisk_cli.cli.humanize import now

    try:
        return now() + delay
    except OverflowError:  # past the year 9999: a mistake, not a pause
        raise typer.BadParameter(f"--until {text} is too far in the future") from None
