"""When the runner's loop does what: the jobs it holds, and from them and its clock, what each
turn does and how long the loop may sleep in between — decisions only, no database and no
process, so that they are tested with a fake clock (docs/architecture.md, "The worker runner").

- Claims: jobs shorter than _SHORT_JOB_S on average get _ROUNDS_AHEAD rounds of attempts claimed
  ahead (under a second of work per slot), or as many as _AHEAD_S of work per slot when that is
  more (jobs of a few milliseconds, up to MAX_BATCH tokens held in all), so a slot that frees
  up starts its next job at once instead of waiting for a commit, and a turn serves as many
  tokens as ended while the last one ran; the claim rides on the turns that write outcomes and
  takes a turn of its own only when just _CLAIM_LOW rounds are left. Longer jobs are claimed
  only for free slots, so a runner never sits on tokens another could work on. After a claim
  that found less than it asked for, the next waits for a notification or the poll interval.
- Flow control: a claim that found less than it asked for reads the stage's controls. Under a
  concurrency or rate limit nothing is claimed ahead (a claimed job holds a slot and spends
  the bucket, started or not); a stage that says until when it starts nothing (a cooldown, a
  timed pause, the rate's next start) is not claimed from before then.
- Writes: outcomes are written _WRITE_ROUNDS rounds of attempts at a time, or once the first
  waited _WRITE_DELAY, or when nothing else is held: one commit for many tokens.
- Renewals: every third of the lease, while anything is held.
- The database away: turns are retried with backoff; nothing that needs it is due before.
- Stopping: the first request starts the grace; a second, or the grace running out, ends it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from glisk_cli.db.listen import POLL_INTERVAL_S
from glisk_cli.pipeline import MAX_BATCH
from glisk_cli.policy import Backoff
from glisk_cli.repositories.token_records import ClaimedToken
from glisk_cli.work.jobs import Job
from glisk_cli.work.options import WorkOptions

_SHORT_JOB_S = 0.1
_ROUNDS_AHEAD = 8
_AHEAD_S = 0.08
_CLAIM_LOW = 2
_WRITE_ROUNDS = 3
_WRITE_DELAY = 0.05
_BACKLOG_EVERY = 2.0  # how often a watched runner reads its stage's backlog
_WATCHED_EVERY = 0.5  # how often a watched runner's live line is redrawn, at the least
# Between turns while the database is away.
OUTAGE_BACKOFF = Backoff(timedelta(seconds=0.5), timedelta(seconds=10))


@dataclass
class Books:
    """The jobs a runner holds: claimed (queued or running), and ended but not yet written."""

    claimed: dict[uuid.UUID, Job] = field(default_factory=dict)
    unwritten: list[Job] = field(default_factory=list)

    def jobs(self) -> list[Job]:
        return [*self.claimed.values(), *self.unwritten]

    def tokens(self) -> list[ClaimedToken]:
        """Every token held: its lease is the runner's to renew."""
        return [token for job in self.jobs() for token in job.tokens]

    def holds_any(self) -> bool:
        return bool(self.claimed or self.unwritten)

    def by_deadline(self) -> Iterator[Job]:
        """The claimed jobs still alive, earliest deadline first, as long as the caller reads.

        Claimed jobs are in claim order, and so are their deadlines: a turn gives the jobs it
        claims, and every job it renews, the same deadline, later than any before it. So the
        first live job's deadline is the earliest, and a reader stops at the first not due."""
        return (job for job in self.claimed.values() if job.killed is None)


@dataclass
class Turn:
    """What one loop turn is to do: claim how many tokens (0: none), write the ended jobs,
    renew every lease held, read the stage's backlog."""

    claim: int = 0
    write: bool = False
    renew: bool = False
    backlog: bool = False

    def __bool__(self) -> bool:
        return bool(self.claim or self.write or self.renew or self.backlog)


@dataclass
class Stopping:
    """Requests to stop — from a signal handler or another thread — and the grace the first one
    starts: claim nothing more, let what runs finish within the grace, and stop everything
    after it, or at a second request."""

    grace: float
    requests: int = 0
    reason: str | None = None
    grace_ends: float | None = None

    def request(self, reason: str) -> None:
        self.requests += 1
        self.reason = self.reason or reason

    def begin_grace(self, now: float) -> bool:
        """Start the grace, once a stop was requested: True the first time."""
        if not self.requests or self.grace_ends is not None:
            return False
        self.grace_ends = now + self.grace
        return True

    def past_grace(self, now: float) -> bool:
        """A second request, or the grace ran out: stop waiting for anything."""
        return self.requests > 1 or (self.grace_ends is not None and now >= self.grace_ends)


@dataclass
class Outage:
    """Turns that failed in a row because the database was away, and when to try the next."""

    failures: int = 0
    retry_at: float = 0.0

    def failed(self, now: float) -> None:
        self.failures += 1
        self.retry_at = now + OUTAGE_BACKOFF.delay(self.failures).total_seconds()

    def over(self) -> None:
        self.failures = 0


class Schedule:
    def __init__(self, options: WorkOptions, *, watched: bool) -> None:
        """`watched`: a live line shows the runner's progress, and wants the backlog."""
        self._options = options
        self._watched = watched
        self.stopping = Stopping(options.grace.total_seconds())
        self.outage = Outage()
        self._job_seconds: float | None = None  # a moving average of runs' durations
        self._renew_at = 0.0
        self._dry = False  # the last claim found less than it asked for
        self._poll_at = 0.0
        self._limited = False  # the stage has a concurrency or rate limit
        self._not_before = 0.0  # the stage starts nothing before then
        self._backlog_at = 0.0

    def job_ended(self, job: Job) -> None:
        average = self._job_seconds
        self._job_seconds = job.seconds if average is None else 0.8 * average + 0.2 * job.seconds
        if self._limited:  # its slot under the stage's limit is free: claim without waiting
            self._dry = False

    def notified(self) -> None:
        """PostgreSQL said work became claimable: claim at once."""
        self._dry = False

    def controlled(self, now: float, *, limited: bool, blocked_for: float | None) -> None:
        """What the stage's controls said after a claim found less than it asked for: whether
        it is limited, and for how long (seconds) it starts nothing, if that is known."""
        self._limited = limited
        self._not_before = now + blocked_for if blocked_for else 0.0

    def turn_done(self, turn: Turn, now: float, *, claimed: int, held_before: bool) -> None:
        self.outage.over()
        if turn.renew or (claimed and not held_before):  # fresh leases: renew a third away
            self._renew_at = now + self._options.renew_every
        if turn.claim:
            self._dry = claimed < turn.claim
            self._poll_at = now + POLL_INTERVAL_S
        if turn.backlog:
            self._backlog_at = now + _BACKLOG_EVERY

    def next_turn(self, books: Books, now: float) -> Turn:
        if now < self.outage.retry_at:
            return Turn()
        concurrency = self._options.concurrency
        wanted = concurrency * (1 + self._rounds_ahead()) - len(books.claimed)
        turn = Turn(write=self._writes_due(books, now))
        # A claim of its own when the rounds ahead run low; else with the next turn that writes.
        ready = len(books.claimed) <= concurrency * _CLAIM_LOW or turn.write
        waited = (not self._dry or now >= self._poll_at) and now >= self._not_before
        if not self.stopping.requests and wanted > 0 and ready and waited:
            turn.claim = min(wanted * self._options.batch, MAX_BATCH)
        turn.renew = books.holds_any() and now >= self._renew_at
        turn.backlog = self._watched and now >= self._backlog_at
        return turn

    def sleep(self, books: Books, now: float) -> float:
        """How long the loop may sleep before something is due. While the database is away
        nothing that needs it is due before the retry (its missed deadlines would make this a
        busy loop)."""
        moments = [now + POLL_INTERVAL_S]
        if now < self._not_before:
            moments.append(self._not_before)
        if now < self.outage.retry_at:
            moments.append(self.outage.retry_at)
        else:
            if books.holds_any():
                moments.append(self._renew_at)
            if books.unwritten:
                moments.append(books.unwritten[0].ended_at + _WRITE_DELAY)
        # A job's lease deadline is due whether or not the database answers.
        if (first := next(books.by_deadline(), None)) is not None:
            moments.append(first.deadline)
        grace_ends = self.stopping.grace_ends
        if grace_ends is not None and now < grace_ends:
            moments.append(grace_ends)
        if self._watched:
            moments.append(now + _WATCHED_EVERY)
        return max(0.0, min(moments) - now)

    def _rounds_ahead(self) -> int:
        """How many rounds of attempts to hold claimed beyond one per slot."""
        seconds = self._job_seconds
        if seconds is None or seconds >= _SHORT_JOB_S or self._limited:
            return 0
        # All the runner holds stays within one claim's worth (MAX_BATCH tokens), every slot
        # and its rounds ahead together.
        held_at_most = MAX_BATCH // (self._options.concurrency * self._options.batch) - 1
        return max(_ROUNDS_AHEAD, min(int(_AHEAD_S / max(seconds, 1e-6)), held_at_most))

    def _writes_due(self, books: Books, now: float) -> bool:
        if not books.unwritten:
            return False
        rounds = len(books.unwritten) >= self._options.concurrency * _WRITE_ROUNDS
        first_waited = now >= books.unwritten[0].ended_at + _WRITE_DELAY
        return rounds or not books.claimed or first_waited
