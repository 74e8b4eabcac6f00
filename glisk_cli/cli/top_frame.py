"""How one `glisk top` frame looks: a header (where the database is, its revision, whether it
answers), the stages, the workers and the failures, as one Rich renderable.

The same renderable goes to the full-screen live view, to `--once` and to the tests' recording
console; every time and duration is formatted by `humanize.py`.
"""

from __future__ import annotations

from datetime import datetime

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from glisk_cli.cli import humanize
from glisk_cli.cli.stage import held_back, state_word
from glisk_cli.cli.top_state import Frame, StageFigures, message
from glisk_cli.flow import StageState
from glisk_cli.repositories.pipeline_view import PipelineReading, WorkerReading

SPARK = "▁▂▃▄▅▆▇█"
SPARK_MINUTES = 15  # the throughput column: one character per minute, oldest on the left
MAX_WORKERS = 12
MAX_MESSAGES = 3
_WORDS = ("state", "rate", "why")  # columns of words, left-aligned as the names are
_UNBOUNDED = 10_000  # a width no table reaches: to measure a table's natural width


def render(frame: Frame) -> RenderableType:
    parts: list[RenderableType] = [_header(frame)]
    if frame.unreachable is not None:
        since = humanize.timestamp(frame.down_since)
        parts.append(
            Text(f"⚠ database unreachable since {since}: {frame.unreachable}", style="bold red")
        )
        if frame.reading is not None:
            parts.append(
                Text(
                    f"showing the reading of {humanize.timestamp(frame.reading.at)}", style="yellow"
                )
            )
    elif frame.back_since is not None:
        parts.append(
            Text(
                f"database reachable again since {humanize.timestamp(frame.back_since)}",
                style="green",
            )
        )
    reading = frame.reading
    if reading is None:
        parts.append(Text("no reading yet", style="dim"))
        return Group(*parts)
    parts += [Text(""), _Fitted(frame.stages, reading), Text(""), _controls(reading), Text("")]
    parts += [_workers(reading), Text(""), *_failures(reading)]
    return Group(*parts)


def _header(frame: Frame) -> Text:
    header = Text("glisk top", style="bold")
    if frame.reading is not None:
        header.append(f"  {humanize.timestamp(frame.reading.at)}")
    header.append(f"  every {frame.interval:g}s · q quits\n", style="dim")
    header.append(f"database {frame.url}  schema {frame.revision or '?'}")
    return header


def _table(*columns: str, title: str) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        title=title,
        title_justify="left",
        title_style="bold",
    )
    for column in columns:
        numeric = column not in ("stage", "worker", "stages", *_WORDS) and "last" not in column
        table.add_column(
            column, justify="right" if numeric else "left", no_wrap=True, overflow="ellipsis"
        )
    return table


class _Fitted:
    """The stages table with as many minutes of bars as the width leaves room for (none on a
    narrow terminal), so that the names, counts and ETAs are never cut."""

    def __init__(self, stages: list[StageFigures], reading: PipelineReading) -> None:
        self._stages, self._reading = stages, reading

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for minutes in (SPARK_MINUTES, 10, 5):
            table = _stages(self._stages, self._reading, minutes)
            unbounded = options.update_width(_UNBOUNDED)  # the table's natural width
            if Measurement.get(console, unbounded, table).maximum <= options.max_width:
                break
        else:
            table = _stages(self._stages, self._reading, 0)
        yield table


def _stages(stages: list[StageFigures], reading: PipelineReading, minutes: int) -> Table:
    bars = [f"last {minutes}m"] if minutes else []
    table = _table(
        "stage",
        "waiting",
        "in flight",
        "done 1m",
        "done 1h",
        *bars,
        "Δ/min",
        "oldest",
        "ETA",
        title="Stages",
    )
    for figures in stages:
        stage = figures.reading
        oldest = stage.oldest_waiting_mint
        waiting = _count(stage.waiting) if stage.free_exact else f"~{_count(stage.waiting)}"
        if stage.expired:
            waiting += f" ({stage.expired} expired)"
        table.add_row(
            stage.stage.value,
            waiting,
            _count(stage.in_flight),
            _count(stage.done_per_minute[0]),
            _count(sum(stage.done_per_minute)),
            *([sparkline(stage.done_per_minute[:minutes][::-1])] if minutes else []),
            _change(figures.change_per_minute),
            humanize.duration(reading.at - oldest) if oldest else "-",
            _eta(figures),
            style="red" if stage.expired else None,
        )
    return table


def _controls(reading: PipelineReading) -> RenderableType:
    """Each stage's flow control (`glisk stage list`): paused or cooling down, and until when;
    the jobs running against its concurrency limit; its rate limit. One line when none is set."""
    states = list(reading.controls.values())
    if not any(_controlled(state) for state in states):
        return Text("Controls: none set (every stage running, no limits)", style="dim")
    table = _table("stage", "state", "jobs", "rate", "why", title="Controls")
    for state in states:
        blocked = state.blocked()
        limit = "" if state.concurrency is None else f"/{state.concurrency}"
        table.add_row(
            state.stage,
            state_word(state),
            f"{_count(state.running)}{limit}",
            "-" if state.rate is None else f"{state.rate} (burst {state.burst})",
            held_back(state),
            style="yellow" if blocked is not None else None,
        )
    return table


def _controlled(state: StageState) -> bool:
    return state.paused or state.cooling_down or state.limited


def _workers(reading: PipelineReading) -> RenderableType:
    if not reading.workers:
        return Text("Workers: none holds a lease", style="dim")
    table = _table("worker", "stages", "tokens", "next expiry", "renewed", "state", title="Workers")
    ranked = sorted(reading.workers, key=lambda worker: (worker.expired == 0, worker.name))
    for worker in ranked[:MAX_WORKERS]:
        table.add_row(
            humanize.middle(worker.name, 40),
            ",".join(sorted(stage.value for stage in worker.stages)),
            _count(worker.live + worker.expired),
            humanize.relative(worker.soonest_expiry, reading.at) if worker.soonest_expiry else "-",
            _ago(worker.last_renewal, reading.at),
            _state(worker),
            style="red" if worker.expired else None,
        )
    if len(ranked) > MAX_WORKERS:
        table.add_row(f"… {len(ranked) - MAX_WORKERS} more", *[""] * 5)
    return table


def _failures(reading: PipelineReading) -> list[RenderableType]:
    if not reading.failures_by_reason and not reading.recent_failures:
        return [Text("Failures: none in the last hour", style="dim")]
    line = Text("Failures in the last hour: ", style="bold")
    counts = sorted(reading.failures_by_reason.items(), key=lambda item: (-item[1], item[0]))
    line.append(" · ".join(f"{reason}: {count}" for reason, count in counts) or "none")
    lines: list[RenderableType] = [line]
    for failure in reading.recent_failures[:MAX_MESSAGES]:
        token = f"token {failure.token_id}" if failure.token_id is not None else ""
        where = " ".join(part for part in (failure.stage, token) if part)
        text = Text(f"  {_ago(failure.at, reading.at)}  {where}: ", style="dim")
        text.append(message(failure.error), style="")
        text.no_wrap, text.overflow = True, "ellipsis"
        lines.append(text)
    return lines


def sparkline(values: list[int]) -> str:
    """`values` as bars, the largest full height; an empty minute is the lowest bar."""
    top = max(values, default=0)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, value * (len(SPARK) - 1) // top)] for value in values)


def _count(value: int) -> str:
    return f"{value:,}"


def _change(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:+,.0f}" if round(value) else "0"


def _eta(figures: StageFigures) -> str:
    if figures.backlog == 0:
        return "done"
    eta = figures.eta
    return humanize.duration(eta) if eta is not None else "-"  # not draining (yet)


def _ago(when: datetime | None, now: datetime) -> str:
    return f"{humanize.duration(now - when)} ago" if when is not None else "-"


def _state(worker: WorkerReading) -> str:
    if worker.expired and not worker.live:
        return f"STALLED ({worker.expired} expired)"
    return f"{worker.expired} expired" if worker.expired else "ok"
