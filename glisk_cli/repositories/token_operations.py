"""TokenOperations: the operators' moves on tokens_s0, by on-chain token id, returning ORM models —
release, reap, retry and the state machine's guarded transitions — and the seed's locks of a
stage's candidates.

Workers coordinate only through this table. A claim (`token_leases.py`) hands a worker up to
`limit` tokens of one stage that no live lease holds, in one statement; the lease says how long
the worker owns them. When a worker dies its lease runs out and the next claim takes the tokens
over (counting another attempt); a token that used up its attempts is failed instead of claimed,
and `reap` fails those nobody claims any more.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Executable, Integer, bindparam, select, text

from glisk_cli import models
from glisk_cli.errors import Conflict, InvalidInput, NotFound
from glisk_cli.pipeline import (
    Stage,
    TokenStatus,
    check_batch_size,
    check_retry_delay,
    stage_named,
)
from glisk_cli.policy import QueuePolicy
from glisk_cli.repositories.base import Repository
from glisk_cli.repositories.token_sql import (
    lock_candidates_sql,
    reap_sql,
    release_by_token_id_sql,
    retry_sql,
)

if TYPE_CHECKING:
    from glisk_cli.db.transaction import Transaction
    from glisk_cli.models import Token


class TokenOperations(Repository):
    """The operators' operations of `uow.tokens`, under the Unit of Work's queue policy."""

    def __init__(self, transaction: Transaction, policy: QueuePolicy) -> None:
        super().__init__(transaction)
        self.policy = policy

    # -- the queue, for callers that manage the transaction themselves -----------------------

    def get_pending_for_generation(self, limit: int = 10) -> Sequence[Token]:
        return self._lock_claimable("generation", limit)

    def get_pending_for_upload(self, limit: int = 10) -> Sequence[Token]:
        return self._lock_claimable("upload", limit)

    def get_ready_for_reveal(self, limit: int = 10) -> Sequence[Token]:
        return self._lock_claimable("reveal", limit)

    def _lock_claimable(self, stage: str, limit: int) -> Sequence[Token]:
        # The claim's candidates, locked FOR UPDATE SKIP LOCKED until the caller's transaction
        # ends (token_sql._picked): concurrent workers each get different tokens, none blocking.
        statement = _candidates(stage_named(stage))
        return self._execute(statement, {"limit": check_batch_size(limit)}).scalars().all()

    # -- by token id ---------------------------------------------------------------------------

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
            _check_holder(token, worker, lease_id)
        sql = release_by_token_id_sql(_columns(), delayed=retry_in is not None)
        params = {"token_ids": [token.token_id for token in tokens], "retry_in": retry_in}
        return _by_token_id(self._execute(_tokens(sql), params).scalars().all())

    def reap(self, max_attempts: int | None = None) -> list[Token]:
        """Fail every unfinished token that used up its attempts and is held by no live lease."""
        limit = self.policy.max_attempts if max_attempts is None else max_attempts
        statement = _tokens(reap_sql(_columns()))
        return _by_token_id(self._execute(statement, {"max_attempts": limit}).scalars().all())

    def retry(
        self, token_ids: Sequence[int] | None = None, *, from_start: bool = False
    ) -> list[Token]:
        """Send failed tokens (all of them if None) back to the stage that failed — the first
        whose output they lack — with fresh attempts; to detected when `from_start`."""
        if token_ids is not None:
            tokens = self._lock_by_token_ids(token_ids)
            not_failed = [t.token_id for t in tokens if t.status is not TokenStatus.FAILED]
            if not_failed:
                listed = ", ".join(map(str, not_failed))
                raise Conflict(f"only failed tokens can be retried; not failed: {listed}")
        sql = retry_sql(_columns(), chosen=token_ids is not None, from_start=from_start)
        statement = _tokens(sql)
        params = {} if token_ids is None else {"token_ids": list(token_ids)}
        return _by_token_id(self._execute(statement, params).scalars().all())

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
        _check_holder(token, worker, lease_id)
        moves = {
            TokenStatus.GENERATING: lambda: token.mark_generating(),
            TokenStatus.UPLOADING: lambda: token.mark_uploading(_given(image_path, "image_path")),
            TokenStatus.READY: lambda: token.mark_ready(
                _given(metadata_cid, "metadata_cid"), image_cid
            ),
            TokenStatus.REVEALED: lambda: token.mark_revealed(_given(tx_hash, "tx_hash")),
            TokenStatus.FAILED: lambda: token.mark_failed(
                {"reason": "marked_failed", **(error or {})}
            ),
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


def _check_holder(token: Token, worker: str | None, lease_id: uuid.UUID | None) -> None:
    if lease_id is not None and token.lease_id != lease_id:
        raise Conflict(
            f"token {token.token_id} is not held under lease {lease_id}"
            + (" (another claim took it over)" if token.lease_id else "")
        )
    if worker is not None and token.claimed_by != worker:
        holder = f"is leased to {token.claimed_by}" if token.claimed_by else "is not leased"
        raise Conflict(f"token {token.token_id} {holder}, not to {worker}")


@functools.cache
def _candidates(stage: Stage) -> Executable:
    sql = lock_candidates_sql(stage, _columns())
    return _tokens(sql, bindparam("limit", type_=Integer))


def _columns() -> str:
    """The token table's columns, as a statement's select list or RETURNING."""
    return ", ".join(column.name for column in models.Token.__table__.columns)


def _tokens(sql: str, *binds: Any) -> Executable:
    """`sql`, whose rows are whole tokens, as an ORM statement loading Tokens (and refreshing
    those the session holds already)."""
    textual = text(sql).bindparams(*binds).columns(*models.Token.__table__.columns)
    statement = select(models.Token).from_statement(textual)
    return statement.execution_options(populate_existing=True)


def _by_token_id(tokens: Sequence[Token]) -> list[Token]:
    # UPDATE … RETURNING yields rows in whatever order the plan visited them.
    return sorted(tokens, key=lambda token: token.token_id)


def _given(value: str | None, name: str) -> str:
    if not value:
        raise InvalidInput(f"this transition needs {name}")
    return value
