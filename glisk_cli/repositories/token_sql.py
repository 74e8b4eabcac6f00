"""The token queue's hand-written statements: a stage's claim, and its candidates locked.

Built from the pipeline's vocabulary (`glisk_cli.pipeline`), once per stage and process: SQL text
is cheap to find in SQLAlchemy's statement cache, where a statement built from expressions is
walked on every execution to find its cache key. docs/architecture.md ("One set-based claim
statement", "Indexes that leave work in flight out") explains their shape.

Lease arithmetic uses `statement_timestamp()`, never `now()`: `now()` is the transaction's start,
so a claim late in a longer transaction would get a shorter lease than it asked for and see
leases as live that have already run out.
"""

from __future__ import annotations

import functools

from sqlalchemy import Executable, Integer, Interval, Text, bindparam, select, text

from glisk_cli.models import Token
from glisk_cli.models.token import status_in
from glisk_cli.pipeline import Stage

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
        WHERE {claimable} AND lease_expires_at < statement_timestamp()
        ORDER BY mint_timestamp LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ),
    unleased AS (
        SELECT id FROM tokens_s0
        WHERE {claimable} AND lease_expires_at IS NULL
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
    status = CAST(CASE WHEN attempts >= :max_attempts THEN 'failed' ELSE '{in_flight}' END
                  AS token_status),
    claimed_by = CASE WHEN attempts >= :max_attempts THEN NULL ELSE :worker END,
    lease_expires_at = CASE WHEN attempts >= :max_attempts THEN NULL
                            ELSE statement_timestamp() + :lease END,
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


def claim_statement(stage: Stage) -> Executable:
    """Lease up to :limit tokens of `stage` to :worker for :lease (failing exhausted ones)."""
    return _stage_statement(_CLAIM, stage)


def lock_candidates_statement(stage: Stage) -> Executable:
    """Lock up to :limit of `stage`'s claimable tokens in the caller's transaction."""
    return _stage_statement(_LOCK_CANDIDATES, stage)


@functools.cache
def _stage_statement(template: str, stage: Stage) -> Executable:
    """`template` for `stage`, as an ORM statement loading Tokens."""
    columns = Token.__table__.columns
    sql = template.format(
        pick=_PICK.format(claimable=status_in(stage.claimable)),
        in_flight=stage.in_flight.value,
        stage=stage.name.value,
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
