"""TokenRepository: tokens_s0 — lookups, the work queue (claims and leases), guarded transitions.

Workers coordinate only through this table. A claim hands a worker up to `limit` tokens of one
stage that no live lease holds, oldest mint first, in one statement; the lease says how long the
worker owns them. When a worker dies its lease runs out and the next claim takes the tokens over
(counting another attempt); a token that used up its attempts is failed instead of claimed.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Executable,
    Integer,
    Interval,
    Text,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB

from glisk_cli.errors import Conflict, InvalidInput, NotFound
from glisk_cli.models import TERMINAL_STATUSES, Token, TokenStatus
from glisk_cli.models.token import token_status_enum
from glisk_cli.repositories.base import Repository

Stage = Literal["generation", "upload", "reveal"]
STAGES: tuple[Stage, ...] = ("generation", "upload", "reveal")

# Which statuses each stage draws from, and what a claim moves the token to.
_STAGE_STATUSES: dict[str, tuple[TokenStatus, ...]] = {
    "generation": (TokenStatus.DETECTED, TokenStatus.GENERATING),
    "upload": (TokenStatus.UPLOADING,),
    "reveal": (TokenStatus.READY,),
}
_CLAIMED_STATUS = {
    "generation": TokenStatus.GENERATING,
    "upload": TokenStatus.UPLOADING,
    "reveal": TokenStatus.READY,
}
_ACTIVE_STATUSES = tuple(status for status in TokenStatus if status not in TERMINAL_STATUSES)


_EMPTY_JSON = literal_column("'{}'::jsonb", JSONB)


def _no_live_lease() -> ColumnElement[bool]:
    return or_(Token.lease_expires_at.is_(None), Token.lease_expires_at < func.now())


def _enum(status: TokenStatus) -> ColumnElement[Any]:
    """A status as a typed SQL constant (a CASE of bind parameters would be text, not enum)."""
    return literal_column(f"'{status.value}'::token_status", token_status_enum)


# The candidates of one stage, as CTEs ending in `picked`, from two sources, each read in order
# through its own index (migration 0003) so that its LIMIT stops early whatever the table holds:
#
# - tokens whose holder's lease ran out (a worker that died or stalled), oldest mint first.
#   They go first: their work was handed out once already, and there are normally none. The
#   lease index finds them by expiry; after many workers died at once, each claim sorts the
#   expired ones by mint until they are drained;
# - then, for the rest of the batch, tokens nobody holds, oldest mint first.
#
# Statuses are written in as literals so the planner matches the partial indexes in every plan,
# prepared or not.
#
# FOR UPDATE SKIP LOCKED: concurrent claimers skip rows another claim is locking at this instant
# instead of queueing behind it, so N workers get N disjoint batches in one round trip each. The
# locks last until the transaction ends; after a claim commits, the lease (claimed_by,
# lease_expires_at) is what keeps other claims away. A WITH query runs only as far as it is
# read, and `picked` reads the free tokens only for the rows the expired ones did not supply, so
# a claim locks exactly the tokens it picks and never holds back a free token it does not take.
# (Each LIMIT stays a plain :limit, which the planner can cost; an expression there would be
# costed as a tenth of the table and could turn the ordered index scan into a sort.)
_PICK = """
    expired AS (
        SELECT id FROM tokens_s0
        WHERE status IN ({statuses}) AND lease_expires_at < now()
        ORDER BY mint_timestamp LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ),
    unleased AS (
        SELECT id FROM tokens_s0
        WHERE status IN ({statuses}) AND lease_expires_at IS NULL
        ORDER BY mint_timestamp LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ),
    picked AS (
        SELECT id FROM expired
        UNION ALL
        SELECT id FROM unleased
        LIMIT :limit
    )"""

# A claim: lease the picked tokens to :worker, counting an attempt, except those that already
# used :max_attempts claims, which are failed with the reason recorded instead. The picked ids
# are matched as an array: how many there are is unknown when the plan is made, and a join
# could then choose to read the whole table.
_CLAIM = """
WITH {pick}
UPDATE tokens_s0 SET
    status = (CASE WHEN attempts >= :max_attempts THEN 'failed' ELSE '{claimed}' END)::token_status,
    claimed_by = CASE WHEN attempts >= :max_attempts THEN NULL ELSE :worker END,
    lease_expires_at = CASE WHEN attempts >= :max_attempts THEN NULL ELSE now() + :lease END,
    attempts = CASE WHEN attempts >= :max_attempts THEN attempts ELSE attempts + 1 END,
    error_data = CASE WHEN attempts >= :max_attempts
        THEN coalesce(error_data, jsonb_build_object()) || jsonb_build_object(
            'reason', 'max_attempts', 'stage', '{stage}', 'attempts', attempts,
            'last_worker', claimed_by)
        ELSE error_data END,
    updated_at = now()
WHERE id = ANY (ARRAY(SELECT id FROM picked))
RETURNING {columns}
"""

# The candidates themselves, locked in the caller's transaction and not leased.
_LOCK_CANDIDATES = """
WITH {pick}
SELECT {columns} FROM tokens_s0
WHERE id = ANY (ARRAY(SELECT id FROM picked))
ORDER BY mint_timestamp, token_id
"""


@functools.cache
def _stage_statement(template: str, stage: str) -> Executable:
    """`template` for `stage` as an ORM statement loading Tokens, built once per process: the
    SQL text is cheap to look up in SQLAlchemy's statement cache, where a statement built from
    expressions has to be walked on every execution to find its cache key."""
    if stage not in _STAGE_STATUSES:
        raise InvalidInput(f"unknown stage {stage!r}: expected one of {', '.join(STAGES)}")
    columns = Token.__table__.columns
    claimed = _CLAIMED_STATUS[stage].value
    statuses = ", ".join(f"'{status.value}'" for status in _STAGE_STATUSES[stage])
    sql = template.format(
        pick=_PICK.format(statuses=statuses),
        claimed=claimed,
        stage=stage,
        columns=", ".join(column.name for column in columns),
    )
    parameters = (
        bindparam("limit", type_=Integer),
        bindparam("max_attempts", type_=Integer),
        bindparam("worker", type_=Text),
        bindparam("lease", type_=Interval),
    )
    used = [parameter for parameter in parameters if f":{parameter.key}" in sql]
    textual = text(sql).bindparams(*used).columns(*columns)
    return select(Token).from_statement(textual).execution_options(populate_existing=True)


class TokenRepository(Repository[Token]):
    model = Token

    # -- lookups ------------------------------------------------------------------------------

    def get_by_token_id(self, token_id: int) -> Token | None:
        """The token with on-chain id `token_id` (served by its unique index)."""
        return self._execute(select(Token).where(Token.token_id == token_id)).scalar_one_or_none()

    def require(self, token_id: int) -> Token:
        token = self.get_by_token_id(token_id)
        if token is None:
            raise NotFound(f"token {token_id} not found")
        return token

    def get_by_author(self, author_id: uuid.UUID, limit: int = 100) -> Sequence[Token]:
        query = select(Token).where(Token.author_id == author_id).order_by(Token.mint_timestamp)
        return self._execute(query.limit(limit)).scalars().all()

    def get_by_status(self, status: TokenStatus, limit: int = 100) -> Sequence[Token]:
        """Tokens in `status`, oldest mint first (served by the (status, mint_timestamp) index)."""
        query = select(Token).where(Token.status == status).order_by(Token.mint_timestamp)
        return self._execute(query.limit(limit)).scalars().all()

    def list(
        self,
        statuses: Sequence[TokenStatus] = (),
        author_id: uuid.UUID | None = None,
        limit: int = 50,
        after_token_id: int | None = None,
    ) -> Sequence[Token]:
        """One page of tokens by on-chain id; the next page starts after the last id shown
        (keyset pagination: every page costs the same, however deep)."""
        query = select(Token).order_by(Token.token_id).limit(limit)
        if statuses:
            query = query.where(Token.status.in_(statuses))
        if author_id is not None:
            query = query.where(Token.author_id == author_id)
        if after_token_id is not None:
            query = query.where(Token.token_id > after_token_id)
        return self._execute(query).scalars().all()

    def stats(self) -> dict[str, Any]:
        """Counts and ages per status, leases, and failures by reason — exact, in three
        statements that never scan the table (an index-only scan still visits the rows of pages
        changed since the last vacuum; autovacuum keeps those few on this table):

        - the counts, by an index-only scan of `ix_tokens_s0_status` (migration 0004), and the
          oldest mint of each status present, one probe of the (status, mint_timestamp) index;
        - live and expired leases, from `ix_tokens_s0_lease_expiry` (only leased tokens);
        - failed tokens by reason, fetching only the failed rows.
        """
        counts = select(Token.status, func.count().label("tokens")).group_by(Token.status).cte()
        oldest = (
            select(Token.mint_timestamp)
            .where(Token.status == counts.c.status)
            .order_by(Token.mint_timestamp)
            .limit(1)
            .lateral()
        )
        per_status = self._execute(
            select(
                counts.c.status,
                counts.c.tokens,
                oldest.c.mint_timestamp,
                func.extract("epoch", func.now() - oldest.c.mint_timestamp),
            ).select_from(counts.join(oldest, true()))
        ).all()
        leases = self._execute(
            select(
                func.count().filter(Token.lease_expires_at >= func.now()),
                func.count().filter(Token.lease_expires_at < func.now()),
            ).where(Token.lease_expires_at.is_not(None))
        ).one()
        reason = func.coalesce(Token.error_data["reason"].astext, "unknown")
        failures = self._execute(
            select(reason, func.count())
            .where(Token.status == literal_column("'failed'"))
            .group_by(reason)
        ).all()
        statuses = {
            status.value: {"count": 0, "oldest_mint_timestamp": None, "oldest_age_seconds": None}
            for status in TokenStatus
        }
        for status, count, oldest_mint, age in per_status:
            statuses[status.value] = {
                "count": count,
                "oldest_mint_timestamp": oldest_mint,
                "oldest_age_seconds": round(float(age), 3),
            }
        return {
            "total": sum(entry["count"] for entry in statuses.values()),
            "statuses": statuses,
            "leases": {"live": leases[0], "expired": leases[1]},
            "failed_by_reason": {str(name): count for name, count in failures},
        }

    def seed_synthetic(
        self, count: int, first_token_id: int, author_ids: Sequence[uuid.UUID]
    ) -> None:
        """Insert `count` detected tokens with ids from `first_token_id`, spread over the given
        authors and over the last day — generated by the server in one statement."""
        statement = text(
            """
            INSERT INTO tokens_s0 (token_id, author_id, minter_address, mint_timestamp)
            SELECT n,
                   (CAST(:authors AS uuid[]))[1 + (n % cardinality(CAST(:authors AS uuid[])))],
                   '0x' || substr(md5(n::text), 1, 40),
                   now() - interval '1 day' + (n - :first) * (interval '1 day' / :count)
            FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS n
            """
        )
        params = {
            "authors": list(author_ids),
            "first": first_token_id,
            "last": first_token_id + count - 1,
            "count": count,
        }
        self._execute(statement, params)

    def max_token_id(self) -> int:
        return int(self._execute(select(func.coalesce(func.max(Token.token_id), 0))).scalar_one())

    # -- the queue, for callers that manage the transaction themselves -----------------------

    def get_pending_for_generation(self, limit: int = 10) -> Sequence[Token]:
        return self._lock_claimable("generation", limit)

    def get_pending_for_upload(self, limit: int = 10) -> Sequence[Token]:
        return self._lock_claimable("upload", limit)

    def get_ready_for_reveal(self, limit: int = 10) -> Sequence[Token]:
        return self._lock_claimable("reveal", limit)

    def _lock_claimable(self, stage: str, limit: int) -> Sequence[Token]:
        # The claim's candidates (see _PICK), locked FOR UPDATE SKIP LOCKED until the caller's
        # transaction ends: concurrent workers each get different tokens, and none blocks on
        # another.
        if not 1 <= limit <= 1000:
            raise InvalidInput(f"limit must be between 1 and 1000, not {limit}")
        statement = _stage_statement(_LOCK_CANDIDATES, stage)
        return self._execute(statement, {"limit": limit}).scalars().all()

    # -- leases ---------------------------------------------------------------------------------

    def claim(
        self,
        stage: Stage | str,
        limit: int,
        worker: str,
        lease: timedelta,
        max_attempts: int = 5,
    ) -> list[Token]:
        """Hand `worker` up to `limit` tokens of `stage` under a lease, returned oldest mint first.

        Tokens whose lease ran out are taken over first; the rest of the batch is the oldest
        mints nobody holds. One statement: pick the candidates, lock them,
        write the lease, return them. A picked
        token that already used `max_attempts` claims is failed (reason max_attempts) instead of
        handed out, so a claim may return fewer tokens than it picked.
        """
        if not 1 <= limit <= 1000:
            raise InvalidInput(f"limit must be between 1 and 1000, not {limit}")
        if lease <= timedelta(0):
            raise InvalidInput("lease must be longer than zero")
        statement = _stage_statement(_CLAIM, stage)
        params = {"limit": limit, "worker": worker, "lease": lease, "max_attempts": max_attempts}
        tokens = self._execute(statement, params).scalars().all()
        claimed = [token for token in tokens if token.status is not TokenStatus.FAILED]
        return sorted(claimed, key=lambda token: (token.mint_timestamp, token.token_id))

    def release(self, token_ids: Sequence[int], worker: str | None = None) -> list[Token]:
        """End the leases on `token_ids` so any worker may claim them again.

        A generating token goes back to detected. With `worker`, only that worker's leases may
        be released: a token leased to someone else is a Conflict, and nothing is released.
        """
        tokens = self._lock_by_token_ids(token_ids)
        if worker is not None:
            for token in tokens:
                self._check_holder(token, worker)
        for token in tokens:
            if token.status is TokenStatus.GENERATING:
                token.status = TokenStatus.DETECTED
            token.claimed_by = None
            token.lease_expires_at = None
            token.updated_at = datetime.now(UTC)
        self._flush()
        return tokens

    def reap(self, max_attempts: int) -> list[Token]:
        """Fail every unfinished token that used up its attempts and is held by no live lease."""
        failure = func.coalesce(Token.error_data, _EMPTY_JSON).op("||")(
            func.jsonb_build_object(
                "reason", "max_attempts", "attempts", Token.attempts,
                "last_worker", Token.claimed_by, "reaped", True,
            )
        )  # fmt: skip
        statement = (
            update(Token)
            .where(
                Token.status.in_(_ACTIVE_STATUSES),
                Token.attempts >= max_attempts,
                _no_live_lease(),
            )
            .values(
                status=_enum(TokenStatus.FAILED),
                error_data=failure,
                claimed_by=None,
                lease_expires_at=None,
                updated_at=func.now(),
            )
            .returning(Token)
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
            update(Token)
            .where(Token.status == TokenStatus.FAILED)
            .values(
                status=_enum(TokenStatus.DETECTED),
                attempts=0,
                claimed_by=None,
                lease_expires_at=None,
                updated_at=func.now(),
            )
            .returning(Token)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        if token_ids is not None:
            statement = statement.where(Token.token_id.in_(token_ids))
        return _by_token_id(self._execute(statement).scalars().all())

    # -- transitions ----------------------------------------------------------------------------

    def transition(
        self,
        token_id: int,
        target: TokenStatus,
        *,
        worker: str | None = None,
        image_path: str | None = None,
        metadata_cid: str | None = None,
        tx_hash: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> Token:
        """Move token `token_id` to `target` through the state machine (DESIGN §3).

        With `worker`, the move is refused (Conflict) unless that worker holds the token's lease,
        so a worker whose lease ran out and was taken over cannot clobber its successor's work.
        """
        [token] = self._lock_by_token_ids([token_id])
        if worker is not None:
            self._check_holder(token, worker)
        moves = {
            TokenStatus.GENERATING: lambda: token.mark_generating(),
            TokenStatus.UPLOADING: lambda: token.mark_uploading(_given(image_path, "image_path")),
            TokenStatus.READY: lambda: token.mark_ready(_given(metadata_cid, "metadata_cid")),
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
        query = (
            select(Token)
            .where(Token.token_id.in_(wanted))
            .order_by(Token.token_id)  # one lock order for everyone: no deadlocks between callers
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        tokens = list(self._execute(query).scalars().all())
        missing = sorted(set(wanted) - {token.token_id for token in tokens})
        if missing:
            raise NotFound(f"token {', '.join(map(str, missing))} not found")
        return tokens

    @staticmethod
    def _check_holder(token: Token, worker: str) -> None:
        if token.claimed_by != worker:
            holder = f"is leased to {token.claimed_by}" if token.claimed_by else "is not leased"
            raise Conflict(f"token {token.token_id} {holder}, not to {worker}")


def _by_token_id(tokens: Sequence[Token]) -> list[Token]:
    # UPDATE … RETURNING yields rows in whatever order the plan visited them.
    return sorted(tokens, key=lambda token: token.token_id)


def _given(value: str | None, name: str) -> str:
    if not value:
        raise InvalidInput(f"this transition needs {name}")
    return value
