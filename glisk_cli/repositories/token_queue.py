"""TokenQueue: the work queue on tokens_s0 as operators and the seed's API use it — locking
candidates, release by token id, reap, retry, and the state machine's guarded transitions.

Workers coordinate only through this table. A claim (`token_leases.py`) hands a worker up to
`limit` tokens of one stage that no live lease holds, in one statement; the lease says how long
the worker owns them. When a worker dies its lease runs out and the next claim takes the tokens
over (counting another attempt); a token that used up its attempts is failed instead of claimed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB

from glisk_cli import models
from glisk_cli.errors import Conflict, InvalidInput, NotFound
from glisk_cli.pipeline import (
    ACTIVE_STATUSES,
    TokenStatus,
    check_batch_size,
    check_retry_delay,
    stage_named,
)
from glisk_cli.repositories.token_leases import TokenLeases, queued_status
from glisk_cli.repositories.token_sql import lock_candidates_statement

if TYPE_CHECKING:
    from glisk_cli.models import Token

_EMPTY_JSON = literal_column("'{}'::jsonb", JSONB)
# What every move that ends a lease writes, besides the move itself.
_LEASE_ENDED: dict[str, Any] = {
    "claimed_by": None, "lease_id": None, "lease_expires_at": None, "updated_at": func.now(),
}  # fmt: skip


class TokenQueue(TokenLeases):
    """The operator's queue operations of the token repository (`uow.tokens`), by token id, on
    ORM models; the workers' operations are in `TokenLeases`."""

    # -- the queue, for callers that manage the transaction themselves -----------------------

    def get_pending_for_generation(self, limit: int = 10) -> Sequence[Token]:
        return self._lock_claimable("generation", limit)

    def get_pending_for_upload(self, limit: int = 10) -> Sequence[Token]:
        return self._lock_claimable("upload", limit)

    def get_ready_for_reveal(self, limit: int = 10) -> Sequence[Token]:
        return self._lock_claimable("reveal", limit)

    def _lock_claimable(self, stage: str, limit: int) -> Sequence[Token]:
        # The claim's candidates, locked FOR UPDATE SKIP LOCKED until the caller's transaction
        # ends: concurrent workers each get different tokens, and none blocks on another.
        statement = lock_candidates_statement(stage_named(stage))
        return self._execute(statement, {"limit": check_batch_size(limit)}).scalars().all()

    # -- the operator's path: by token id, ORM models ------------------------------------------

    def release_by_token_id(
        self,
        token_ids: Sequence[int],
        *,
        worker: str | None = None,
        lease_id: uuid.UUID | None = None,
        retry_in: timedelta | None = None,
    ) -> list[Token]:
        """End the leases on `token_ids` so any worker may claim them again (`glisk tokens
        release`). A generating token goes back to detected; with `retry_in`, none is claimable
        before then. With `worker` or `lease_id`, only tokens held by that worker or under that
        lease may be released: anything else is a Conflict, and nothing is released."""
        if retry_in is not None:
            check_retry_delay(retry_in)
        tokens = self._lock_by_token_ids(token_ids)
        for token in tokens:
            self._check_holder(token, worker, lease_id)
        for token in tokens:
            token.status = queued_status(token.status)
            token.claimed_by = None
            token.lease_id = None
            # A retry delay is a lease nobody holds: claimable once it has run out.
            due = None if retry_in is None else func.statement_timestamp() + retry_in
            token.lease_expires_at = due  # type: ignore[assignment]
            token.updated_at = func.now()  # type: ignore[assignment]
        self._flush()
        if retry_in is not None:  # computed by the database: read them back, in one query
            reread = select(models.Token).where(models.Token.id.in_([token.id for token in tokens]))
            self._execute(reread.execution_options(populate_existing=True)).all()
        return tokens

    def reap(self, max_attempts: int | None = None) -> list[Token]:
        """Fail every unfinished token that used up its attempts and is held by no live lease."""
        limit = self.policy.max_attempts if max_attempts is None else max_attempts
        failure = func.coalesce(models.Token.error_data, _EMPTY_JSON).op("||")(
            func.jsonb_build_object(
                "reason", "max_attempts", "attempts", models.Token.attempts,
                "last_worker", models.Token.claimed_by, "reaped", True,
            )
        )  # fmt: skip
        statement = (
            update(models.Token)
            .where(
                models.Token.status.in_(ACTIVE_STATUSES),
                models.Token.attempts >= limit,
                _no_live_lease(),
            )
            .values(status=_enum(TokenStatus.FAILED), error_data=failure, **_LEASE_ENDED)
            .returning(models.Token)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return _by_token_id(self._execute(statement).scalars().all())

    def retry(self, token_ids: Sequence[int] | None = None) -> list[Token]:
        """Send failed tokens back to detected with fresh attempts (all failed tokens if None)."""
        if token_ids is not None:
            tokens = self._lock_by_token_ids(token_ids)
            not_failed = [t.token_id for t in tokens if t.status is not TokenStatus.FAILED]
            if not_failed:
                listed = ", ".join(map(str, not_failed))
                raise Conflict(f"only failed tokens can be retried; not failed: {listed}")
        statement = (
            update(models.Token)
            .where(models.Token.status == TokenStatus.FAILED)
            .values(status=_enum(TokenStatus.DETECTED), attempts=0, **_LEASE_ENDED)
            .returning(models.Token)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        if token_ids is not None:
            statement = statement.where(models.Token.token_id.in_(token_ids))
        return _by_token_id(self._execute(statement).scalars().all())

    # -- transitions ----------------------------------------------------------------------------

    def transition(
        self,
        token_id: int,
        target: TokenStatus,
        *,
        worker: str | None = None,
        lease_id: uuid.UUID | None = None,
        image_path: str | None = None,
        image_cid: str | None = None,
        metadata_cid: str | None = None,
        tx_hash: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> Token:
        """Move token `token_id` to `target` through the state machine.

        With `lease_id`, the move is refused (Conflict) unless the token is still held under that
        lease, so a worker whose lease was taken over cannot clobber its successor's work. With
        `worker`, unless that worker holds the lease (a name only: a restarted worker reusing
        it passes). With neither, this is the operator's override.
        """
        [token] = self._lock_by_token_ids([token_id])
        self._check_holder(token, worker, lease_id)
        moves = {
            TokenStatus.GENERATING: lambda: token.mark_generating(),
            TokenStatus.UPLOADING: lambda: token.mark_uploading(_given(image_path, "image_path")),
            TokenStatus.READY: lambda: token.mark_ready(
                _given(metadata_cid, "metadata_cid"), image_cid
            ),
            TokenStatus.REVEALED: lambda: token.mark_revealed(_given(tx_hash, "tx_hash")),
            TokenStatus.FAILED: lambda: token.mark_failed(error or {"reason": "marked failed"}),
        }
        if target not in moves:
            raise InvalidInput(f"a token cannot be moved to {target.value}")
        moves[target]()
        self._flush()
        return token

    def _lock_by_token_ids(self, token_ids: Sequence[int]) -> list[Token]:
        """Load and row-lock the given tokens (waiting for other writers), all of them or fail."""
        wanted = list(dict.fromkeys(token_ids))
        # One lock order for everyone: no deadlocks between callers.
        query = (
            select(models.Token)
            .where(models.Token.token_id.in_(wanted))
            .order_by(models.Token.token_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        tokens = list(self._execute(query).scalars().all())
        missing = sorted(set(wanted) - {token.token_id for token in tokens})
        if missing:
            raise NotFound(f"token {', '.join(map(str, missing))} not found")
        return tokens

    @staticmethod
    def _check_holder(token: Token, worker: str | None, lease_id: uuid.UUID | None) -> None:
        if lease_id is not None and token.lease_id != lease_id:
            raise Conflict(
                f"token {token.token_id} is not held under lease {lease_id}"
                + (" (another claim took it over)" if token.lease_id else "")
            )
        if worker is not None and token.claimed_by != worker:
            holder = f"is leased to {token.claimed_by}" if token.claimed_by else "is not leased"
            raise Conflict(f"token {token.token_id} {holder}, not to {worker}")


def _no_live_lease() -> ColumnElement[bool]:
    return or_(
        models.Token.lease_expires_at.is_(None),
        models.Token.lease_expires_at < func.statement_timestamp(),
    )


def _enum(status: TokenStatus) -> ColumnElement[Any]:
    """A status as a typed SQL constant (a CASE of bind parameters would be text, not enum)."""
    return literal_column(f"'{status.value}'::token_status", models.token_status_enum)


def _by_token_id(tokens: Sequence[Token]) -> list[Token]:
    # UPDATE … RETURNING yields rows in whatever order the plan visited them.
    return sorted(tokens, key=lambda token: token.token_id)


def _given(value: str | None, name: str) -> str:
    if not value:
        raise InvalidInput(f"this transition needs {name}")
    return value
