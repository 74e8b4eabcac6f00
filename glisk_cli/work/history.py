"""Each stage's history: how its attempts are recorded in the seed's history tables when a job
starts and when its outcomes are written (docs/architecture.md, "The worker runner").

Every stage has one (`history_of`), and a stage added to the vocabulary fails the type check
until it says how its attempts are recorded. Rows carry ids derived from their job
(`Job.history_id`; a generation row's from its token and lease), so writing the same outcomes
twice (after a COMMIT whose fate is unknown) adds nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, assert_never

from glisk_cli.pipeline import TX_HASH, Stage, StageName
from glisk_cli.repositories.image_job import JobEnd, external_job_id
from glisk_cli.repositories.ipfs_record import UploadRecord
from glisk_cli.repositories.reveal_tx import RevealRecord
from glisk_cli.repositories.token_records import ClaimedToken
from glisk_cli.uow import UnitOfWork
from glisk_cli.work.protocol import Failed, Succeeded, TokenOutcome

if TYPE_CHECKING:
    from glisk_cli.work.jobs import Job

# What became of each token of the jobs written, by token id (tokens_s0.id).
Final = Mapping[uuid.UUID, TokenOutcome]


class History(Protocol):
    def started(self, uow: UnitOfWork, tokens: Sequence[ClaimedToken], program: str) -> None:
        """`tokens` were just claimed for jobs of `program`, in `uow`'s transaction."""
        ...

    def ended(self, uow: UnitOfWork, jobs: Sequence[Job], final: Final) -> None:
        """`jobs` are over and `final` is what became of each of their tokens."""
        ...

    def checkpointed(
        self, uow: UnitOfWork, tokens: Sequence[ClaimedToken], checkpoint: Mapping[str, Any]
    ) -> None:
        """A job of `tokens` recorded `checkpoint` (before a side effect), in `uow`."""
        ...


def history_of(stage: Stage) -> History:
    match stage.name:
        case StageName.GENERATION:
            return _GENERATION
        case StageName.UPLOAD:
            return _UPLOAD
        case StageName.REVEAL:
            return _REVEAL
        case unknown:
            assert_never(unknown)


class _Generation:
    """image_generation_jobs: a row per token, written as running when it is claimed (its id
    derived from the token and the lease), ended when its outcome is written — only while it is
    still running."""

    def started(self, uow: UnitOfWork, tokens: Sequence[ClaimedToken], program: str) -> None:
        uow.image_jobs.start_running(tokens, program)

    def ended(self, uow: UnitOfWork, jobs: Sequence[Job], final: Final) -> None:
        uow.image_jobs.finish(
            [_job_end(token, final[token.id]) for job in jobs for token in job.tokens]
        )

    def checkpointed(
        self, uow: UnitOfWork, tokens: Sequence[ClaimedToken], checkpoint: Mapping[str, Any]
    ) -> None:
        """The image service's id of the job (`external_job_id`) goes on its running row (and
        on the row of every attempt that resumes from it: `start_running`)."""
        if tokens and (external := external_job_id(tokens[0])) is not None:
            uow.image_jobs.note_external_id(tokens, external)


def _job_end(token: ClaimedToken, outcome: TokenOutcome) -> JobEnd:
    if isinstance(outcome, Succeeded):
        extras = outcome.extras
        return JobEnd(
            token, "succeeded", extras.get("service"), extras.get("external_job_id"), None
        )
    error = outcome.error if isinstance(outcome, Failed) else None
    return JobEnd(token, "failed", None, None, error)


class _Upload:
    """ipfs_upload_records: for a success, the image's and the metadata's record with their
    CIDs; for anything else, one failed image record."""

    def started(self, uow: UnitOfWork, tokens: Sequence[ClaimedToken], program: str) -> None:
        pass

    def ended(self, uow: UnitOfWork, jobs: Sequence[Job], final: Final) -> None:
        records = [
            record
            for job in jobs
            for token in job.tokens
            for record in _uploads(job, token, final[token.id])
        ]
        uow.ipfs_records.record(records)

    def checkpointed(
        self, uow: UnitOfWork, tokens: Sequence[ClaimedToken], checkpoint: Mapping[str, Any]
    ) -> None:
        pass  # the CIDs pinned so far are for the next attempt; the records come at the end


def _uploads(job: Job, token: ClaimedToken, outcome: TokenOutcome) -> list[UploadRecord]:
    def record(kind: str, cid: str | None, status: str, error: Any) -> UploadRecord:
        return UploadRecord(
            job.history_id(kind, token.id),
            token.id,
            kind,
            cid,
            status,
            token.attempts - 1,
            error,
            job.started,
        )

    if isinstance(outcome, Succeeded):
        return [
            record("image", outcome.fields["image_cid"], "succeeded", None),
            record("metadata", outcome.fields["metadata_cid"], "succeeded", None),
        ]
    return [record("image", None, "failed", outcome.error if isinstance(outcome, Failed) else None)]


class _Reveal:
    """reveal_transactions: a row per transaction a job's answer named, and one for the tokens
    it failed."""

    def started(self, uow: UnitOfWork, tokens: Sequence[ClaimedToken], program: str) -> None:
        pass

    def ended(self, uow: UnitOfWork, jobs: Sequence[Job], final: Final) -> None:
        for job in jobs:
            for record in _reveals(job, final):
                uow.reveal_txs.record(record)

    def checkpointed(
        self, uow: UnitOfWork, tokens: Sequence[ClaimedToken], checkpoint: Mapping[str, Any]
    ) -> None:
        """A signed transaction's hash, checkpointed before its broadcast: the transaction is
        recorded `pending`, and the job's answer moves it to `sent` or `confirmed`."""
        tx_hash = checkpoint.get("tx_hash")
        if TX_HASH.problem(tx_hash) is not None or not tokens:
            return
        lease = tokens[0].lease_id
        uow.reveal_txs.record(
            RevealRecord(
                uuid.uuid5(uuid.UUID(int=0) if lease is None else lease, f"pending:{tx_hash}"),
                [token.id for token in tokens],
                tx_hash,
                None,
                None,
                "pending",
                datetime.now(UTC),
            )
        )


def _reveals(job: Job, final: Final) -> list[RevealRecord]:
    """Grouped by what the job answered, not by what became of the tokens: a transaction whose
    tokens lost their leases meanwhile was still sent, and the tokens it failed by their error
    (one failed row per distinct error, saying it). The rows (their ids derived from the answer)
    come out the same however often the outcomes are written."""
    answered = job.outcomes or {}
    groups: dict[str, list[ClaimedToken]] = {}
    said_of: dict[str, TokenOutcome] = {}
    for token in job.tokens:
        said = answered.get(token.id, final[token.id])
        if not isinstance(said, Succeeded):
            said = final[token.id]  # what became of it: its error carries why (or `shutdown`)
        key = said.fields["tx_hash"] if isinstance(said, Succeeded) else _failure_key(said)
        groups.setdefault(key, []).append(token)
        said_of.setdefault(key, said)
    records = []
    for key, tokens in groups.items():
        said = said_of[key]
        succeeded = isinstance(said, Succeeded)
        found = said.extras if isinstance(said, Succeeded) else {}
        status = "confirmed" if "block_number" in found else "sent" if succeeded else "failed"
        records.append(
            RevealRecord(
                job.history_id("reveal", key or None),
                [token.id for token in tokens],
                key if succeeded else None,
                found.get("block_number"),
                found.get("gas_price_gwei"),
                status,
                job.started,
                None if succeeded else _error_of(said),
            )
        )
    return records


def _error_of(outcome: TokenOutcome) -> dict[str, Any] | None:
    return outcome.error if isinstance(outcome, Failed) else None


def _failure_key(outcome: TokenOutcome) -> str:
    """What groups a reveal job's failed tokens into one row: the same error (or none)."""
    error = _error_of(outcome)
    return "" if error is None else json.dumps(error, sort_keys=True, default=str)


_GENERATION, _UPLOAD, _REVEAL = _Generation(), _Upload(), _Reveal()
