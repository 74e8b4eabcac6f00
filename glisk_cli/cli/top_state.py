"""What `glisk top` knows between refreshes: the last reading, how the backlogs moved since the
earlier ones, the drain rates and ETAs worked out from both, and whether the database answers.

`Monitor.refresh()` reads once and returns a `Frame`: what one screen (or one `--once` print, or
one `--json` document) shows. A database that cannot be reached does not end the view: the frame
says since when, keeps the last reading, and the next refresh tries again.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from glisk_cli.cli.humanize import now as wall_clock
from glisk_cli.cli.stage import stage_document
from glisk_cli.errors import DatabaseUnavailable
from glisk_cli.pipeline import StageName
from glisk_cli.redact import redact
from glisk_cli.repositories.pipeline_view import PipelineReading, StageReading, WorkerReading

RATE_MINUTES = 5  # the history a drain rate is taken over
DELTA_WINDOW = 60.0  # seconds of refreshes the backlog's change is measured over
MESSAGE_WIDTH = 200  # an error message is one line, cut here (the view cuts it to its width)


@dataclass(frozen=True)
class StageFigures:
    """One stage as the view shows it."""

    reading: StageReading
    change_per_minute: float | None  # the backlog's change between refreshes (None: too early)
    rate_per_minute: float | None  # how fast it drains: history first, else the backlog's fall

    @property
    def backlog(self) -> int:
        return self.reading.waiting + self.reading.in_flight

    @property
    def eta(self) -> timedelta | None:
        """How long until the backlog is gone at the current rate (None: not draining)."""
        if not self.rate_per_minute or self.rate_per_minute <= 0:
            return None
        return timedelta(minutes=self.backlog / self.rate_per_minute)


@dataclass(frozen=True)
class Frame:
    url: str
    interval: float
    lease: timedelta
    revision: str | None
    reading: PipelineReading | None  # the last reading that succeeded (None: none yet)
    stages: list[StageFigures] = field(default_factory=list)
    unreachable: str | None = None  # why the last refresh could not read (redacted)
    down_since: datetime | None = None
    back_since: datetime | None = None  # the database answered again after an outage


class Monitor:
    """Reads the pipeline on each `refresh()` and remembers what it needs between refreshes."""

    def __init__(
        self,
        read: Callable[[], PipelineReading],
        revision: Callable[[], str | None],
        *,
        url: str,
        interval: float,
        lease: timedelta,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read, self._revision, self._clock = read, revision, clock
        self.url, self.interval, self.lease = url, interval, lease
        self._samples: deque[tuple[float, dict[StageName, int]]] = deque()
        self._last: PipelineReading | None = None
        self._last_revision: str | None = None
        self._down_since: datetime | None = None
        self._back_since: datetime | None = None

    def refresh(self) -> Frame:
        try:
            # The revision first (read from the database once, then remembered): its connection
            # then serves the read's Unit of Work, which keeps it (kept_connection.py), so the
            # view holds one connection, not two.
            self._last_revision = self._revision()
            reading = self._read()
        except DatabaseUnavailable as error:
            self._down_since = self._down_since or wall_clock()
            self._back_since = None
            return self._frame(unreachable=redact(error.message))
        if self._down_since is not None:
            self._down_since, self._back_since = None, wall_clock()
        self._last = reading
        self._remember(reading)
        return self._frame()

    def _remember(self, reading: PipelineReading) -> None:
        now = self._clock()
        backlogs = {
            name: stage.waiting + stage.in_flight
            for name, stage in reading.stages.items()
            if stage.free_exact  # an estimate does not move between refreshes
        }
        self._samples.append((now, backlogs))
        while len(self._samples) > 2 and now - self._samples[1][0] >= DELTA_WINDOW:
            self._samples.popleft()

    def _frame(self, unreachable: str | None = None) -> Frame:
        stages = []
        if self._last is not None:
            stages = [self._figures(stage) for stage in self._last.stages.values()]
        return Frame(
            url=self.url,
            interval=self.interval,
            lease=self.lease,
            revision=self._last_revision,
            reading=self._last,
            stages=stages,
            unreachable=unreachable,
            down_since=self._down_since,
            back_since=self._back_since,
        )

    def _figures(self, stage: StageReading) -> StageFigures:
        change = None
        if len(self._samples) >= 2:
            (then, before), (now, after) = self._samples[0], self._samples[-1]
            if stage.stage in before and stage.stage in after and now > then:
                change = (after[stage.stage] - before[stage.stage]) * 60 / (now - then)
        rate: float | None = sum(stage.done_per_minute[:RATE_MINUTES]) / RATE_MINUTES
        if not rate:  # no history written: a falling backlog is the rate it drains at
            rate = -change if change is not None and change < 0 else None
        return StageFigures(stage, change, rate)


def message(error: Any) -> str:
    """An error as one redacted line: its message, else the last line of its stderr, else its
    reason, else the document itself."""
    text = ""
    if isinstance(error, dict):
        for key in ("message", "stderr", "error", "reason"):
            value = error.get(key)
            if isinstance(value, str) and value.strip():
                lines = [line for line in value.splitlines() if line.strip()]
                text = lines[-1] if key == "stderr" else lines[0]
                break
    if not text:
        text = error if isinstance(error, str) else json.dumps(error, ensure_ascii=False)
    one_line = redact(" ".join(text.split()))
    return one_line if len(one_line) <= MESSAGE_WIDTH else one_line[: MESSAGE_WIDTH - 1] + "…"


def document(frame: Frame) -> dict[str, Any]:
    """The frame as the one JSON document of `glisk top --json`."""
    reading = frame.reading
    stages = {figures.reading.stage.value: figures for figures in frame.stages}
    return {
        "at": reading.at if reading else None,
        "database": {
            "url": frame.url,
            "revision": frame.revision,
            "reachable": frame.unreachable is None,
            "error": frame.unreachable,
            "down_since": frame.down_since,
        },
        "stages": {name: _stage(figures, reading) for name, figures in stages.items()}
        if reading
        else {},
        "workers": [_worker(worker, reading.at) for worker in reading.workers] if reading else [],
        "failures": {
            "last_hour_by_reason": dict(reading.failures_by_reason) if reading else {},
            "recent": [
                {"at": f.at, "stage": f.stage, "token_id": f.token_id, "message": message(f.error)}
                for f in (reading.recent_failures if reading else [])
            ],
        },
    }


def _stage(figures: StageFigures, reading: PipelineReading) -> dict[str, Any]:
    stage, eta = figures.reading, figures.eta
    oldest = stage.oldest_waiting_mint
    controls = reading.controls.get(stage.stage)
    return {
        "waiting": stage.waiting,
        "waiting_exact": stage.free_exact,
        "free": stage.free,
        "expired": stage.expired,
        "retrying": stage.retrying,
        "in_flight": stage.in_flight,
        "done_last_minute": stage.done_per_minute[0],
        "done_last_hour": sum(stage.done_per_minute),
        "done_per_minute": list(stage.done_per_minute),  # newest first
        "backlog_change_per_minute": figures.change_per_minute,
        "rate_per_minute": figures.rate_per_minute,
        "oldest_waiting_mint_timestamp": oldest,
        "oldest_waiting_age_seconds": (reading.at - oldest).total_seconds() if oldest else None,
        "eta_seconds": eta.total_seconds() if eta is not None else None,
        # The object `glisk stage list --json` prints for the stage (without its counts).
        "controls": stage_document(controls) if controls is not None else None,
    }


def _worker(worker: WorkerReading, at: datetime) -> dict[str, Any]:
    renewal = worker.last_renewal
    return {
        "name": worker.name,
        "stages": sorted(stage.value for stage in worker.stages),
        "live": worker.live,
        "expired": worker.expired,
        "soonest_expiry": worker.soonest_expiry,
        "last_renewal": renewal,
        "seconds_since_renewal": (at - renewal).total_seconds() if renewal else None,
        "stalled": worker.expired > 0,
    }
