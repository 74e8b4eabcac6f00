"""Writing attempts' outcomes: every landed flight of a loop turn in one Unit of Work — one
batch move for the successes, one release for the rest, and the history rows — fenced by the
leases, so an outcome whose lease was lost meanwhile changes nothing but the history.

Retry-safe: if the commit's fate is unknown (the connection broke during COMMIT) the runner
writes the same outcomes again; the history rows carry ids derived from their attempt
(`Flight.history_id`), so a second write adds nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from glisk_cli.pipeline import Stage, StageName
from glisk_cli.repositories.image_job import JobEnd, job_id
from glisk_cli.repositories.ipfs_record import UploadRecord
from glisk_cli.repositories.reveal_tx import RevealRecord
from glisk_cli.repositories.token_records import ClaimedToken
from glisk_cli.uow import UnitOfWork
from glisk_cli.work.flights import Landed
from glisk_cli.work.protocol import Failed, Interrupted, Succeeded, TokenOutcome


@dataclass
class Written:
    """What a write did, per token id: moved on, failed an attempt (retried later or, with
    its attempts used up, failed for good), handed back, or dropped (its lease was lost)."""

    succeeded: list[int] = field(default_factory=list)
    retried: dict[int, dict[str, Any]] = field(default_factory=dict)
    exhausted: dict[int, dict[str, Any]] = field(default_factory=dict)
    released: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)


def write_outcomes(uow: UnitOfWork, stage: Stage, landed: Sequence[Landed]) -> Written:
    """Apply every landed flight's outcomes in `uow` (which the caller commits)."""
    outcomes: dict[uuid.UUID, TokenOutcome] = {}
    tokens: dict[uuid.UUID, ClaimedToken] = {}
    for item in landed:
        outcomes |= item.end.outcomes
        tokens |= {token.id: token for token in item.flight.tokens}
    moves = [(tokens[id], o.fields) for id, o in outcomes.items() if isinstance(o, Succeeded)]
    moved = uow.tokens.advance(moves)
    releases = [
        (tokens[id], o.error if isinstance(o, Failed) else None)
        for id, o in outcomes.items()
        if isinstance(o, Failed | Interrupted)  # Interrupted: released at once, no error
    ]
    # A shutdown's attempt gives its claim back: a token on its last attempt must not be
    # failed for a deploy.
    stopped = {
        id for id, o in outcomes.items() if isinstance(o, Interrupted) and o.reason == "shutdown"
    }
    released = uow.tokens.release_each(releases, uncounted=stopped)

    written = Written(succeeded=moved.moved, released=[])
    final: dict[uuid.UUID, TokenOutcome] = {}
    max_attempts = uow.tokens.policy.max_attempts
    for id, outcome in outcomes.items():
        token = tokens[id]
        refused = moved.refused.get(token.token_id) or released.refused.get(token.token_id)
        if refused:
            written.lost.append(token.token_id)
            final[id] = Failed({**_error_of(outcome), "reason": refused})
        elif isinstance(outcome, Failed):
            spent = written.exhausted if token.attempts >= max_attempts else written.retried
            spent[token.token_id] = outcome.error
            final[id] = outcome
        elif isinstance(outcome, Interrupted):
            written.released.append(token.token_id)
            final[id] = Failed({"message": f"stopped ({outcome.reason})", "reason": outcome.reason})
        else:
            final[id] = outcome
    _write_history(uow, stage, landed, final)
    return written


def _error_of(outcome: TokenOutcome) -> dict[str, Any]:
    if isinstance(outcome, Failed):
        return outcome.error
    if isinstance(outcome, Succeeded):
        return {"message": "result dropped: the lease was lost"}
    return {"message": "stopped: the lease was lost"}


def _write_history(
    uow: UnitOfWork, stage: Stage, landed: Sequence[Landed], final: dict[uuid.UUID, TokenOutcome]
) -> None:
    if stage.name is StageName.GENERATION:
        uow.image_jobs.finish([
            JobEnd(
                job_id(token),
                "succeeded" if isinstance(outcome, Succeeded) else "failed",
                outcome.extras.get("service") if isinstance(outcome, Succeeded) else None,
                outcome.extras.get("external_job_id") if isinstance(outcome, Succeeded) else None,
                outcome.error if isinstance(outcome, Failed) else None,
            )
            for item in landed for token in item.flight.tokens
            for outcome in [final[token.id]]
        ])  # fmt: skip
    elif stage.name is StageName.UPLOAD:
        uow.ipfs_records.record([
            record for item in landed for token in item.flight.tokens
            for record in _uploads(item, token, final[token.id])
        ])  # fmt: skip
    else:
        for item in landed:
            for record in _reveals(item, final):
                uow.reveal_txs.record(record)


def _uploads(item: Landed, token: ClaimedToken, outcome: TokenOutcome) -> list[UploadRecord]:
    flight = item.flight
    if isinstance(outcome, Succeeded):
        return [
            UploadRecord(flight.history_id(kind, token.id), token.id, kind, outcome.fields[cid],
                         "succeeded", token.attempts - 1, None, flight.started)
            for kind, cid in (("image", "image_cid"), ("metadata", "metadata_cid"))
        ]  # fmt: skip
    error = outcome.error if isinstance(outcome, Failed) else None
    return [UploadRecord(flight.history_id("image", token.id), token.id, "image", None,
                         "failed", token.attempts - 1, error, flight.started)]  # fmt: skip


def _reveals(item: Landed, final: dict[uuid.UUID, TokenOutcome]) -> list[RevealRecord]:
    """One row per transaction the batch's answer named, and one for the tokens it failed.

    Grouped by what the job answered, not by what became of the tokens: a transaction whose
    tokens lost their leases meanwhile was still sent, and the rows (their ids derived from the
    answer) come out the same however often the outcomes are written."""
    by_hash: dict[str | None, list[ClaimedToken]] = {}
    extras: dict[str | None, dict[str, Any]] = {}
    for token in item.flight.tokens:
        answered = item.end.outcomes.get(token.id, final[token.id])
        tx_hash = answered.fields["tx_hash"] if isinstance(answered, Succeeded) else None
        by_hash.setdefault(tx_hash, []).append(token)
        if isinstance(answered, Succeeded):
            extras[tx_hash] = answered.extras
    records = []
    for tx_hash, tokens in by_hash.items():
        found = extras.get(tx_hash, {})
        status = "failed" if tx_hash is None else "confirmed" if "block_number" in found else "sent"
        records.append(
            RevealRecord(item.flight.history_id("reveal", tx_hash), [t.id for t in tokens],
                         tx_hash, found.get("block_number"), found.get("gas_price_gwei"),
                         status, item.flight.started)
        )  # fmt: skip
    return records
