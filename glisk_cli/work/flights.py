"""A flight: one attempt in progress — the tokens it holds under their lease, the job running
for them, and when it began. The runner keeps its flights; the completer reads them."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from glisk_cli.repositories.token_records import ClaimedToken
from glisk_cli.work.jobs import Attempt, AttemptEnd


@dataclass
class Flight:
    tokens: list[ClaimedToken]
    attempt: Attempt | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    killed: str | None = None  # why the runner stopped it, if it did
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def history_id(self, *parts: object) -> uuid.UUID:
        """The id of one history row this attempt writes, the same every time it is asked:
        a write retried after its commit was lost finds its rows there and adds none."""
        return uuid.uuid5(self.id, ":".join(str(part) for part in parts))

    def attach(self, attempt: Attempt) -> None:
        """The job started: from now on a kill reaches it (one asked for before, at once)."""
        with self._lock:
            self.attempt = attempt
            if self.killed is not None:
                attempt.kill(self.killed)

    def kill(self, reason: str) -> None:
        with self._lock:
            if self.killed is None:
                self.killed = reason
            if self.attempt is not None:
                self.attempt.kill(reason)


@dataclass(frozen=True)
class Landed:
    """A flight whose attempt is over, waiting to be written to the database."""

    flight: Flight
    end: AttemptEnd
