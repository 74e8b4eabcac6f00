"""StageControls: `uow.stages` — each stage's flow control (pause, concurrency limit, rate limit,
cooldown) with what it holds back now, and changing it (docs/architecture.md, "Flow control in
the claim").

Every change first takes the stage's "controls" advisory lock exclusively. Each claim holds it
shared from its admission to its commit, so a change waits for the claims under way, and every
claim that starts after the change committed obeys it: once `glisk stage pause` returns, no job
of the stage starts anywhere. A change that may let jobs start (resume, a new limit, a shorter
cooldown) wakes the runners waiting on LISTEN; the notification goes out at commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from glisk_cli.db.listen import CHANNEL
from glisk_cli.durations import format_duration
from glisk_cli.errors import InvalidInput
from glisk_cli.flow import MAX_COOLDOWN, MAX_PAUSE_REASON, Rate, StageState
from glisk_cli.pipeline import STAGES, Stage, stage_named
from glisk_cli.repositories.base import Repository

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('glisk.controls'), hashtext(%(stage)s))"
_WAKE = f"SELECT pg_notify('{CHANNEL}', '')"
# A stage's row is made by the first change of its controls; until then it has none.
_ROW = (
    "INSERT INTO stage_controls (stage) VALUES (%(stage)s) ON CONFLICT (stage) DO NOTHING "
    "RETURNING stage"
)


def _state_sql(stage: Stage) -> str:
    # A job is a lease: its tokens share one lease id (a retry delay holds none). The lease
    # index holds every leased token by status and expiry, so this reads the live ones only.
    return f"""
SELECT '{stage.name.value}', c.paused_at, c.pause_reason, c.paused_until, c.concurrency,
       c.rate_jobs, c.rate_seconds, coalesce(c.burst, 1),
       CASE WHEN c.rate_jobs IS NOT NULL THEN glisk_bucket(c) END,
       c.cooldown_until, c.cooldown_reason, statement_timestamp(), r.running, r.holders
FROM (
    SELECT count(DISTINCT lease_id) AS running,
           coalesce(array_remove(array_agg(DISTINCT claimed_by), NULL), '{{}}') AS holders
    FROM tokens_s0
    WHERE status = '{stage.in_flight.value}' AND lease_expires_at > statement_timestamp()
) AS r
LEFT JOIN stage_controls c ON c.stage = '{stage.name.value}'
"""


_STATE_SQL = {stage.name: _state_sql(stage) for stage in STAGES.values()}
_STATES_SQL = "\nUNION ALL\n".join(_STATE_SQL.values())  # every stage, in pipeline order

_PAUSE = """
UPDATE stage_controls SET
    paused_at = CASE WHEN paused_at IS NOT NULL
                      AND (paused_until IS NULL OR paused_until > statement_timestamp())
                     THEN paused_at ELSE statement_timestamp() END,
    pause_reason = %(reason)s,
    paused_until = %(until)s,
    updated_at = now()
WHERE stage = %(stage)s AND (%(until)s::timestamptz IS NULL OR %(until)s > statement_timestamp())
RETURNING stage
"""

_RESUME = """
UPDATE stage_controls SET paused_at = NULL, pause_reason = NULL, paused_until = NULL,
    updated_at = now()
WHERE stage = %(stage)s
RETURNING stage
"""

# A new or changed rate starts with a full bucket, or keeps what it holds, up to the new burst.
_LIMIT = """
UPDATE stage_controls c SET
    concurrency = CASE WHEN %(set_concurrency)s THEN %(concurrency)s ELSE c.concurrency END,
    rate_jobs = CASE WHEN %(set_rate)s THEN %(rate_jobs)s ELSE c.rate_jobs END,
    rate_seconds = CASE WHEN %(set_rate)s THEN %(rate_seconds)s ELSE c.rate_seconds END,
    burst = coalesce(%(burst)s, c.burst),
    bucket = CASE WHEN c.rate_jobs IS NULL THEN coalesce(%(burst)s, c.burst)
                  ELSE least(glisk_bucket(c), coalesce(%(burst)s, c.burst)) END,
    bucket_at = statement_timestamp(),
    updated_at = now()
WHERE stage = %(stage)s
RETURNING stage
"""

# By hand, the cooldown is set as given (0s ends it); asked for by a job, it only ever grows.
_COOL_DOWN = """
UPDATE stage_controls SET
    cooldown_until = CASE
        WHEN %(extend)s THEN greatest(cooldown_until, statement_timestamp() + %(delay)s)
        ELSE statement_timestamp() + %(delay)s END,
    cooldown_reason = CASE
        WHEN %(extend)s AND cooldown_until >= statement_timestamp() + %(delay)s
        THEN cooldown_reason ELSE %(reason)s END,
    updated_at = now()
WHERE stage = %(stage)s
RETURNING stage
"""


def _state(row: Sequence[Any]) -> StageState:
    (stage, paused_at, reason, until, concurrency, rate_jobs, rate_seconds, burst) = row[:8]
    bucket, cooldown_until, cooldown_reason, now, running, holders = row[8:]
    return StageState(
        stage=stage,
        now=now,
        paused_at=paused_at,
        pause_reason=reason,
        paused_until=until,
        concurrency=concurrency,
        running=running,
        holders=tuple(holders),
        rate=None if rate_jobs is None else Rate(rate_jobs, rate_seconds),
        burst=burst,
        bucket=bucket,
        cooldown_until=cooldown_until,
        cooldown_reason=cooldown_reason,
    )


@dataclass(frozen=True)
class Unchanged:
    """A limit `limit()` leaves as it is (the default of each of its arguments)."""


UNCHANGED = Unchanged()


class StageControls(Repository):
    def state(self, stage: str) -> StageState:
        """`stage`'s controls, and the jobs running and the bucket, now."""
        [row] = self.transaction.rows(_STATE_SQL[stage_named(stage).name], {})
        return _state(row)

    def states(self) -> list[StageState]:
        """Every stage's, in one statement."""
        return [_state(row) for row in self.transaction.rows(_STATES_SQL, {})]

    def pause(
        self, stage: str, *, reason: str | None = None, until: datetime | None = None
    ) -> None:
        """Start no job of `stage` anywhere until `resume` (or `until`); running jobs go on."""
        if reason is not None and len(reason) > MAX_PAUSE_REASON:
            raise InvalidInput(f"--reason is over {MAX_PAUSE_REASON} characters")
        if until is not None and until.tzinfo is None:
            raise InvalidInput("--until needs a time zone (say 2026-12-06T18:00:00Z)")
        if not self._change(_PAUSE, stage, {"reason": reason, "until": until}):
            raise InvalidInput(f"--until {until.isoformat() if until else ''} is in the past")

    def resume(self, stage: str) -> None:
        self._change(_RESUME, stage, {})

    def limit(
        self,
        stage: str,
        *,
        concurrency: int | Unchanged | None = UNCHANGED,
        rate: Rate | Unchanged | None = UNCHANGED,
        burst: int | None = None,
    ) -> None:
        """Set (or, with None, lift) the stage's fleet-wide concurrency limit and rate limit;
        `burst`: how many starts the rate's bucket holds (at least 1)."""
        if isinstance(concurrency, int) and concurrency < 1:
            raise InvalidInput("--concurrency must be at least 1 (to stop a stage, pause it)")
        if burst is not None and burst < 1:
            raise InvalidInput("--burst must be at least 1")
        params: dict[str, Any] = {
            "set_concurrency": not isinstance(concurrency, Unchanged),
            "concurrency": concurrency if isinstance(concurrency, int) else None,
            "set_rate": not isinstance(rate, Unchanged),
            "rate_jobs": rate.jobs if isinstance(rate, Rate) else None,
            "rate_seconds": rate.seconds if isinstance(rate, Rate) else None,
            "burst": burst,
        }
        self._change(_LIMIT, stage, params)

    def cool_down(
        self, stage: str, delay: timedelta, *, reason: str | None = None, extend: bool = False
    ) -> None:
        """Start no job of `stage` anywhere for `delay` from now (0: end a cooldown). With
        `extend` (a job's request), a longer cooldown already set stays as it is."""
        if not timedelta(0) <= delay <= MAX_COOLDOWN:
            raise InvalidInput(
                f"a cooldown is 0s to {format_duration(MAX_COOLDOWN)}, not {format_duration(delay)}"
            )
        self._change(_COOL_DOWN, stage, {"delay": delay, "reason": reason, "extend": extend})

    def _change(self, sql: str, stage: str, params: dict[str, Any]) -> bool:
        """Run a change of `stage`'s controls under its exclusive lock, and wake the waiting
        runners at commit; whether it changed anything."""
        name = stage_named(stage).name.value
        self.transaction.rows(_LOCK, {"stage": name})
        self.transaction.rows(_ROW, {"stage": name})
        changed = bool(self.transaction.rows(sql, {**params, "stage": name}))
        if changed:
            self.transaction.rows(_WAKE, {})
        return changed
