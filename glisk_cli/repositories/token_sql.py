"""The token queue's hand-written statements: claim, renew, advance, release, and the lock of a
stage's candidates (docs/architecture.md, "One set-based claim statement", "Indexes that leave
work in flight out", "The workers' path below the ORM").

Each is built from the pipeline's vocabulary once per stage and process, as driver SQL with
`%(name)s` parameters: the hot path hands it to psycopg as it is, with no SQLAlchemy compilation
or cache lookup per call.

Lease arithmetic uses `statement_timestamp()`, never `now()`: `now()` is the transaction's start,
so a claim late in a longer transaction would get a shorter lease than it asked for and see
leases as live that have already run out.
"""

from __future__ import annotations

import functools
import operator

from sqlalchemy import Executable, Integer, bindparam, select, text

from glisk_cli.models.literals import status_in
from glisk_cli.pipeline import STAGES, Stage, StageName
from glisk_cli.repositories.token_records import CLAIMED_COLUMNS

_RETURNING = ", ".join(f"tokens_s0.{column}" for column in CLAIMED_COLUMNS).replace(
    "tokens_s0.status", "tokens_s0.status::text"
)

# The candidates of one stage, as CTEs ending in `picked`, from two sources, each read in order
# through its own index so that its LIMIT stops early whatever the table holds:
#
# - tokens whose lease ran out (`ix_tokens_s0_lease_expiry`), in the index's order: a worker's
#   that died or stalled, or a retry delay's, which is a lease nobody holds. They go first: their
#   work was handed out once already, and there are normally none. No ORDER BY: sorting them by
#   mint made every claim pay for a sort node (bench/claim_statements.py), for an order among
#   tokens that all go before any free one anyway;
# - then, for the rest of the batch, tokens nobody holds, oldest mint first (the queue indexes).
#
# Statuses are written in as literals so the planner matches the partial indexes in every plan,
# prepared or not.
#
# FOR UPDATE SKIP LOCKED: concurrent claimers skip rows another claim is locking at this instant
# instead of queueing behind it, so N workers get N disjoint batches in one round trip each. The
# locks last until the transaction ends; after a claim commits, the lease (lease_id,
# lease_expires_at) is what keeps other claims away. A WITH query runs only as far as it is
# read, and `picked` reads each source only for the rows the ones before it did not supply, so a
# claim locks exactly the tokens it picks and never holds back a free token it does not take.
#
# Each LIMIT is the batch size written in as a number (`claim_sql`), never a parameter: then no
# parameter shapes the plan, so once psycopg prepares the statement PostgreSQL keeps one generic
# plan for it instead of planning every claim anew, as it did with the LIMIT a parameter (its
# generic plan, costed for an unknown LIMIT, always lost to a custom one). The lock of the ORM
# path (`lock_candidates_statement`) binds it instead, and an expression there would be costed
# as a tenth of the table and could turn the ordered index scan into a sort.
_PICK = """
    expired AS (
        SELECT id FROM tokens_s0
        WHERE {claimable} AND lease_expires_at < statement_timestamp()
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ),
    free AS (
        SELECT id FROM tokens_s0
        WHERE {claimable} AND lease_expires_at IS NULL
        ORDER BY mint_timestamp LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ),
    picked AS (
        SELECT id FROM expired
        UNION ALL
        SELECT id FROM free
        LIMIT %(limit)s
    )"""

# A claim: lease the picked tokens to %(worker)s under the new %(lease_id)s, counting an
# attempt, except those that already used %(max_attempts)s claims, which are failed with the
# reason recorded instead. The picked ids are matched as an array: how many there are is
# unknown when the plan is made, and a join could then choose to read the whole table.
_CLAIM = """
WITH {pick}
UPDATE tokens_s0 SET
    status = CAST(CASE WHEN attempts >= %(max_attempts)s THEN 'failed' ELSE '{in_flight}' END
                  AS token_status),
    claimed_by = CASE WHEN attempts >= %(max_attempts)s THEN NULL ELSE %(worker)s END,
    lease_id = CASE WHEN attempts >= %(max_attempts)s THEN NULL ELSE %(lease_id)s::uuid END,
    lease_expires_at = CASE WHEN attempts >= %(max_attempts)s THEN NULL
                            ELSE statement_timestamp() + %(lease)s END,
    attempts = CASE WHEN attempts >= %(max_attempts)s THEN attempts ELSE attempts + 1 END,
    error_data = CASE WHEN attempts >= %(max_attempts)s
        THEN coalesce(error_data, jsonb_build_object()) || jsonb_build_object(
            'reason', 'max_attempts', 'stage', '{stage}', 'attempts', attempts,
            'last_worker', claimed_by)
        ELSE error_data END,
    updated_at = now()
WHERE id = ANY (ARRAY(SELECT id FROM picked))
RETURNING {returning}
"""

# The candidates themselves, locked in the caller's transaction and not leased.
_LOCK_CANDIDATES = """
WITH {pick}
SELECT {columns} FROM tokens_s0
WHERE id = ANY (ARRAY(SELECT id FROM picked))
ORDER BY mint_timestamp, token_id
"""

# The fence of every later step: a token is acted on only while it carries the lease id it
# was claimed under. Another claim writes a new one; a move or release clears it.
_HELD = (
    "FROM unnest(%(ids)s::uuid[], %(lease_ids)s::uuid[]) AS held(id, lease_id) "
    "WHERE tokens_s0.id = held.id AND tokens_s0.lease_id = held.lease_id"
)

RENEW = f"""
UPDATE tokens_s0 SET lease_expires_at = statement_timestamp() + %(lease)s
{_HELD}
RETURNING {_RETURNING}
"""

RENEW_LEASE_ID = f"""
UPDATE tokens_s0 SET lease_expires_at = statement_timestamp() + %(lease)s
WHERE lease_expires_at IS NOT NULL AND lease_id = %(lease_id)s::uuid  -- from the lease index
RETURNING {_RETURNING}
"""

# A batch move, one statement: each token to its stage's next status with its result fields,
# lease ended, attempts reset when a new stage begins. The moves (from, to, reset) come from the
# vocabulary, per token, as arrays. It returns the tokens it moved; why the others were not is
# asked afterwards (LEASE_IDS).
ADVANCE = """
UPDATE tokens_s0 SET
    status = moves.to_status,
    image_path = coalesce(moves.image_path, tokens_s0.image_path),
    image_cid = coalesce(moves.image_cid, tokens_s0.image_cid),
    metadata_cid = coalesce(moves.metadata_cid, tokens_s0.metadata_cid),
    reveal_tx_hash = coalesce(moves.tx_hash, tokens_s0.reveal_tx_hash),
    attempts = CASE WHEN moves.reset THEN 0 ELSE tokens_s0.attempts END,
    claimed_by = NULL, lease_id = NULL, lease_expires_at = NULL,
    updated_at = now()
FROM unnest(
    %(ids)s::uuid[], %(lease_ids)s::uuid[], %(from_status)s::token_status[],
    %(to_status)s::token_status[], %(reset)s::boolean[], %(image_path)s::text[],
    %(image_cid)s::text[], %(metadata_cid)s::text[], %(tx_hash)s::text[]
) AS moves(id, lease_id, from_status, to_status, reset, image_path, image_cid, metadata_cid,
           tx_hash)
WHERE tokens_s0.id = moves.id AND tokens_s0.lease_id = moves.lease_id
  AND tokens_s0.status = moves.from_status
RETURNING tokens_s0.id
"""

# The lease each of the given tokens carries now, for the tokens a move left where they were: one
# that still carries the lease id presented was not in its stage's in-flight status; one that
# does not lost its lease (taken over, or ended by a move, a release or an operator). A statement
# of its own, so that it sees what committed while the move waited for a row: the move's own
# snapshot could still show a lease that another claim had just taken over.
LEASE_IDS = "SELECT id, lease_id FROM tokens_s0 WHERE id = ANY (%(ids)s::uuid[])"

# A release: the lease ends, a token in flight goes back to where its stage's tokens wait, and
# with a delay it is held by nobody until then (a lease without a holder). With an error: the
# error is recorded with the attempt number, and a token that used up its attempts is failed at
# once rather than left to wait out a delay only to be failed by the next claim.
RELEASE = """
UPDATE tokens_s0 SET
    status = CAST(CASE
        WHEN held.error IS NOT NULL AND attempts >= %(max_attempts)s THEN 'failed'
        ELSE held.queued END AS token_status),
    error_data = CASE WHEN held.error IS NULL THEN error_data
        WHEN attempts >= %(max_attempts)s THEN coalesce(error_data, jsonb_build_object())
            || held.error || jsonb_build_object(
                'attempt', attempts, 'reason', 'max_attempts', 'attempts', attempts,
                'last_worker', claimed_by)
        ELSE coalesce(error_data, jsonb_build_object())
            || held.error || jsonb_build_object('attempt', attempts) END,
    lease_expires_at = CASE WHEN held.error IS NOT NULL AND attempts >= %(max_attempts)s
        THEN NULL ELSE statement_timestamp() + held.delay END,
    attempts = CASE WHEN held.uncounted THEN greatest(attempts - 1, 0) ELSE attempts END,
    claimed_by = NULL, lease_id = NULL,
    updated_at = now()
FROM unnest(%(ids)s::uuid[], %(lease_ids)s::uuid[], %(queued)s::text[], %(delays)s::interval[],
            %(errors)s::jsonb[], %(uncounted)s::boolean[])
    AS held(id, lease_id, queued, delay, error, uncounted)
WHERE tokens_s0.id = held.id AND tokens_s0.lease_id = held.lease_id
RETURNING tokens_s0.token_id
"""

# What is left of a stage's work, anywhere: tokens waiting (claimable now, or when a retry delay
# or a lease runs out) and tokens in flight under anyone's lease. `glisk work --drain` stops
# when all of it is zero; the oldest waiting mint is what its live line shows.
BACKLOG = """
SELECT count(*) FILTER (WHERE {claimable} AND lease_expires_at IS NULL),
       count(*) FILTER (WHERE {claimable} AND lease_expires_at IS NOT NULL AND claimed_by IS NULL),
       count(*) FILTER (WHERE claimed_by IS NOT NULL),
       min(mint_timestamp) FILTER (WHERE {claimable} AND claimed_by IS NULL)
FROM tokens_s0 WHERE {statuses}
"""


def claim_sql(stage: Stage, limit: int) -> str:
    """Lease up to `limit` tokens of `stage` (failing exhausted ones)."""
    return _claim_sql(stage.name, limit)


@functools.lru_cache(maxsize=64)  # a worker claims batches of one size, or of a few
def _claim_sql(stage: StageName, limit: int) -> str:
    return _CLAIMS[stage].replace("%(limit)s", str(operator.index(limit)))  # an int, nothing else


_CLAIMS = {
    stage.name: _CLAIM.format(
        pick=_PICK.format(claimable=status_in(stage.claimable)),
        in_flight=stage.in_flight.value,
        stage=stage.name.value,
        returning=_RETURNING,
    )
    for stage in STAGES.values()
}


@functools.cache
def backlog_sql(stage: Stage) -> str:
    """Tokens of `stage` waiting now, waiting out a delay, in flight; the oldest waiting mint."""
    statuses = (*stage.claimable, stage.in_flight)
    return BACKLOG.format(claimable=status_in(stage.claimable), statuses=status_in(statuses))


@functools.cache
def lock_candidates_statement(stage: Stage) -> Executable:
    """Lock up to :limit of `stage`'s claimable tokens in the caller's transaction, as an ORM
    statement loading Tokens (the seed's `get_pending_*`)."""
    from glisk_cli.models import Token  # operators' ORM path: the models load here

    columns = Token.__table__.columns
    sql = _LOCK_CANDIDATES.format(
        pick=_PICK.format(claimable=status_in(stage.claimable)).replace("%(limit)s", ":limit"),
        columns=", ".join(column.name for column in columns),
    )
    textual = text(sql).bindparams(bindparam("limit", type_=Integer)).columns(*columns)
    return select(Token).from_statement(textual).execution_options(populate_existing=True)
