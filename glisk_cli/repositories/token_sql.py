"""The token queue's SQL, assembled from one fragment per effect: ending a lease, failing a token
that used up its attempts, sending a released token back to where its stage's tokens wait
(docs/architecture.md, "One set-based claim statement", "Indexes that leave work in flight out",
"The workers' path below the ORM").

The workers' statements (claim, renew, advance, release, backlog) are driver SQL with
`%(name)s` parameters, built from the vocabulary once per stage and process and handed to
psycopg as they are. The operators' (release by token id, reap, retry, the seed's candidate
locks) are text for the ORM, with `:name` parameters. The fragments take no parameters, so both
kinds share them.

Lease arithmetic uses `statement_timestamp()`, never `now()`: `now()` is the transaction's start,
so a claim late in a longer transaction would get a shorter lease than it asked for and see
leases as live that have already run out.
"""

from __future__ import annotations

import functools
import json
import operator

from glisk_cli.db.planner import without
from glisk_cli.models.literals import LEASE_COLUMNS, status_in
from glisk_cli.pipeline import (
    ACTIVE_STATUSES,
    RESULT_FIELDS,
    STAGE_IN_FLIGHT,
    STAGE_OF,
    STAGES,
    Stage,
    StageName,
    TokenStatus,
)
from glisk_cli.repositories.token_records import TOKEN_COLUMNS

# The status comes back as text, which the record makes a TokenStatus whatever loaders the
# connection has registered.
_RETURNED = {column: f"tokens_s0.{column}" for column in TOKEN_COLUMNS}
RETURNING = ", ".join((_RETURNED | {"status": "tokens_s0.status::text"}).values())
RESULT_NAMES = tuple(field.name for field in RESULT_FIELDS)  # each an array parameter of ADVANCE

# -- fragments: one per effect -------------------------------------------------------------------


def end_lease(due: str = "NULL") -> str:
    """SET items that end a token's lease: nobody holds it, and it may be claimed again at `due`
    (NULL: at once; a retry delay is a lease nobody holds). Stamped with the database clock."""
    ended = dict.fromkeys(LEASE_COLUMNS, "NULL") | {"lease_expires_at": due, "updated_at": "now()"}
    return ", ".join(f"{column} = {value}" for column, value in ended.items())


def used_up(max_attempts: str) -> str:
    """SQL true for a token that used up its attempts (`max_attempts`: the parameter)."""
    return f"tokens_s0.attempts >= {max_attempts}"


def _by_status(values: dict[str, str], otherwise: str) -> str:
    """SQL choosing by the token's status: `values[status]` (SQL), `otherwise` for the rest."""
    chosen = " ".join(f"WHEN '{status}' THEN {value}" for status, value in values.items())
    return f"CASE tokens_s0.status {chosen} ELSE {otherwise} END"


# Why a token that used up its attempts was failed: one document, whether the claim that found it,
# the release of its last failed attempt or `reap` failed it.
_STAGE = _by_status({s.value: f"'{stage.name.value}'" for s, stage in STAGE_OF.items()}, "NULL")
MAX_ATTEMPTS_ERROR = (
    f"jsonb_build_object('reason', 'max_attempts', 'stage', {_STAGE}, "
    "'attempts', tokens_s0.attempts, 'last_worker', tokens_s0.claimed_by)"
)

# Where a released token waits: back in its stage's queue (a generating token is detected again).
WAITING_STATUS = _by_status(
    {
        s.value: f"CAST('{stage.queued.value}' AS token_status)"
        for s, stage in STAGE_IN_FLIGHT.items()
        if s is not stage.queued
    },
    "tokens_s0.status",
)

_NO_ERROR = "coalesce(tokens_s0.error_data, jsonb_build_object())"

# How the capped counts of `glisk top` and `tokens why` are planned, as `glisk_pick` is declared
# (migration 0011): each read through its index in the index's order, stopping at its LIMIT,
# whatever the table's statistics say. A table never analysed (a big drop, rows inserted by
# plain SQL) makes the planner guess a handful of free tokens, and then a bitmap scan of the
# whole queue and a sort look as cheap as the ordered index scan (docs/architecture.md, "Plans
# that need no statistics").
IN_INDEX_ORDER = without("seqscan", "bitmapscan", "sort")
# How the reads that count leases or a stage's backlog are planned: through the index that holds
# them (as a bitmap, the cheapest way to read many), never as a pass over the table's history.
THROUGH_INDEXES = without("seqscan")


def _picked(stage: Stage, limit: str) -> str:
    """SQL rows `picked(id)`: up to `limit` (SQL) of `stage`'s claimable tokens, locked until the
    transaction ends: first those whose lease ran out (a worker's that died or stalled, or a
    retry delay's), as their work was handed out once already and there are normally none; then,
    for the rest, the oldest mints nobody holds.

    `glisk_pick` (migration 0011) locks them FOR UPDATE SKIP LOCKED: concurrent claimers skip rows
    another claim is locking at this instant instead of queueing behind it, so N workers get N
    disjoint batches in one round trip each; after a claim commits, the lease (lease_id,
    lease_expires_at) keeps other claims away. It reads each source through its index, in the
    index's order, stopping at its LIMIT, under planner settings declared with it, so whatever
    the table's statistics say a claim of N reads about N index entries (docs/architecture.md,
    "Plans that need no statistics"), and it locks exactly the tokens it returns.

    Being VOLATILE, it reads with a snapshot of its own, taken after the calling statement's: a
    token inserted in between is locked and returned but invisible to the caller, so the claim
    leaves it as it was; unleased, it is claimable again once the lock goes at the transaction's
    end. A token changed in between is seen by the caller's UPDATE in its newest version, which
    the lock holds (READ COMMITTED rechecks a row changed since its snapshot).
    """
    return f"glisk_pick('{stage.name.value}', {limit}) AS picked(id)"


# -- the workers' statements ---------------------------------------------------------------------


def claim_sql(stage: Stage, limit: int, size: int = 1) -> str:
    """Lease up to `limit` tokens of `stage` to %(worker)s as jobs of `size` tokens, each job
    under its own lease id from %(lease_ids)s (one per job, in order), counting an attempt —
    as many jobs as the stage's controls admit — except tokens that already used
    %(max_attempts)s claims, which are failed instead."""
    return _claim_sql(stage.name, operator.index(limit), operator.index(size))  # ints only


def claim_jobs(limit: int, size: int) -> int:
    """How many jobs a claim of `limit` tokens in jobs of `size` starts at most."""
    return -(-limit // size)


@functools.lru_cache(maxsize=64)  # a worker claims batches of one size, or of a few
def _claim_sql(name: StageName, limit: int, size: int) -> str:
    # The limit is written in as a number, never a parameter, so that no parameter shapes the
    # statement's plan and, once psycopg prepares it, PostgreSQL keeps one generic plan for it.
    # The admitted jobs bound what glisk_pick reads (and locks): none when no job is admitted.
    # glisk_admit comes first, glisk_spend last (migration 0007, docs/architecture.md, "Flow
    # control in the claim"): the spend reads every claimed row, so it runs after the update.
    stage, used = STAGES[name], used_up("%(max_attempts)s")
    return f"""
WITH admitted AS MATERIALIZED (
    SELECT glisk_admit('{name.value}', {claim_jobs(limit, size)}, '{stage.in_flight.value}')
        AS jobs
),
started AS (
    SELECT id, (%(lease_ids)s::uuid[])[(row_number() OVER () - 1) / {size} + 1] AS lease_id
    FROM {_picked(stage, f"least({limit}, (SELECT jobs FROM admitted) * {size})")}
),
claimed AS (
    UPDATE tokens_s0 SET
        status = CAST(CASE WHEN {used} THEN 'failed' ELSE '{stage.in_flight.value}' END
                      AS token_status),
        claimed_by = CASE WHEN {used} THEN NULL ELSE %(worker)s END,
        lease_id = CASE WHEN {used} THEN NULL ELSE started.lease_id END,
        lease_expires_at = CASE WHEN {used} THEN NULL
                                ELSE statement_timestamp() + %(lease)s END,
        attempts = CASE WHEN {used} THEN attempts ELSE attempts + 1 END,
        error_data = CASE WHEN {used} THEN {_NO_ERROR} || {MAX_ATTEMPTS_ERROR}
                          ELSE error_data END,
        updated_at = now()
    FROM started
    WHERE tokens_s0.id = started.id
    RETURNING {RETURNING}
),
spent AS (
    SELECT glisk_spend('{name.value}', count(DISTINCT lease_id)::integer) FROM claimed
)
SELECT claimed.* FROM claimed, spent
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
RETURNING {RETURNING}
"""

RENEW_LEASE_ID = f"""
UPDATE tokens_s0 SET lease_expires_at = statement_timestamp() + %(lease)s
WHERE lease_expires_at IS NOT NULL AND lease_id = %(lease_id)s::uuid  -- from the lease index
RETURNING {RETURNING}
"""

# A batch move, one statement: each token to its stage's next status with its result fields,
# lease ended, attempts reset when a new stage begins. The moves (from, to, reset) come from the
# vocabulary, per token, as arrays, and so do the result columns. It returns the tokens it moved;
# why the others were not is asked afterwards (LEASE_IDS).
_RESULTS_SET = ", ".join(
    f"{field.column} = coalesce(moves.{field.name}, tokens_s0.{field.column})"
    for field in RESULT_FIELDS
)
ADVANCE = f"""
UPDATE tokens_s0 SET
    status = moves.to_status,
    {_RESULTS_SET},
    attempts = CASE WHEN moves.reset THEN 0 ELSE tokens_s0.attempts END,
    checkpoint = NULL,
    {end_lease()}
FROM unnest(
    %(ids)s::uuid[], %(lease_ids)s::uuid[], %(from_status)s::token_status[],
    %(to_status)s::token_status[], %(reset)s::boolean[],
    {", ".join(f"%({field.name})s::text[]" for field in RESULT_FIELDS)}
) AS moves(id, lease_id, from_status, to_status, reset, {", ".join(RESULT_NAMES)})
WHERE tokens_s0.id = moves.id AND tokens_s0.lease_id = moves.lease_id
  AND tokens_s0.status = moves.from_status
RETURNING tokens_s0.id
"""

# A checkpoint lands only on tokens held under a lease that has not run out: once it has, another
# claim may take the token over at any moment, and the job must not go on to its side effect.
_LIVE = "tokens_s0.lease_expires_at > statement_timestamp()"
CHECKPOINT = f"""
UPDATE tokens_s0 SET checkpoint = %(checkpoint)s::jsonb
{_HELD} AND {_LIVE}
RETURNING {RETURNING}
"""
# By lease id (`glisk tokens checkpoint`, and a job of `glisk work`): the tokens named, or with
# none named, every token held under the lease (from the lease index).
CHECKPOINT_LEASE_ID = f"""
UPDATE tokens_s0 SET checkpoint = %(checkpoint)s::jsonb
WHERE lease_id = %(lease_id)s::uuid AND lease_expires_at IS NOT NULL AND {_LIVE}
  AND (%(token_ids)s::int[] IS NULL OR token_id = ANY (%(token_ids)s::int[]))
RETURNING {RETURNING}
"""

# The lease each of the given tokens carries now, for the tokens a move left where they were: one
# that still carries the lease id presented was not in its stage's in-flight status; one that
# does not lost its lease (taken over, or ended by a move, a release or an operator). A statement
# of its own, so that it sees what committed while the move waited for a row: the move's own
# snapshot could still show a lease that another claim had just taken over.
LEASE_IDS = "SELECT id, lease_id FROM tokens_s0 WHERE id = ANY (%(ids)s::uuid[])"

# A release: the lease ends, the token goes back to where its stage's tokens wait, and with a
# delay it is held by nobody until then. With an error: the error is recorded with the attempt
# number, and a token that used up its attempts is failed at once rather than left to wait out a
# delay only to be failed by the next claim. It returns each token released, and whether it was
# failed.
_FAILS = f"held.error IS NOT NULL AND {used_up('%(max_attempts)s')}"
RELEASE = f"""
UPDATE tokens_s0 SET
    status = CASE WHEN {_FAILS} THEN CAST('failed' AS token_status) ELSE {WAITING_STATUS} END,
    error_data = CASE WHEN held.error IS NULL THEN tokens_s0.error_data
        WHEN {_FAILS} THEN {_NO_ERROR} || held.error
            || jsonb_build_object('attempt', tokens_s0.attempts) || {MAX_ATTEMPTS_ERROR}
        ELSE {_NO_ERROR} || held.error || jsonb_build_object('attempt', tokens_s0.attempts) END,
    attempts = CASE WHEN held.uncounted THEN greatest(attempts - 1, 0) ELSE attempts END,
    {end_lease(f"CASE WHEN {_FAILS} THEN NULL ELSE statement_timestamp() + held.delay END")}
FROM unnest(%(ids)s::uuid[], %(lease_ids)s::uuid[], %(delays)s::interval[],
            %(errors)s::jsonb[], %(uncounted)s::boolean[])
    AS held(id, lease_id, delay, error, uncounted)
WHERE tokens_s0.id = held.id AND tokens_s0.lease_id = held.lease_id
RETURNING tokens_s0.token_id, tokens_s0.status = 'failed'
"""


@functools.cache
def backlog_sql(stage: Stage) -> str:
    """What is left of `stage`'s work, anywhere: tokens waiting (claimable now, or when a retry
    delay or a lease runs out), tokens in flight under anyone's lease, and the oldest waiting
    mint. `glisk work --drain` stops when all of it is zero."""
    claimable = status_in(stage.claimable)
    return f"""
SELECT count(*) FILTER (WHERE {claimable} AND lease_expires_at IS NULL),
       count(*) FILTER (WHERE {claimable} AND lease_expires_at IS NOT NULL AND claimed_by IS NULL),
       count(*) FILTER (WHERE claimed_by IS NOT NULL),
       min(mint_timestamp) FILTER (WHERE {claimable} AND claimed_by IS NULL)
FROM tokens_s0 WHERE {status_in((*stage.claimable, stage.in_flight))}
"""


# -- the operators' statements (text for the ORM, `:name` parameters; `columns` are the model's) --


def lock_candidates_sql(stage: Stage, columns: str) -> str:
    """Up to :limit of `stage`'s claimable tokens, locked in the caller's transaction and not
    leased (the seed's `get_pending_*`). FOR UPDATE takes each row in its newest version, which
    `glisk_pick` locked already (its snapshot is newer than this statement's)."""
    return f"""
SELECT {columns} FROM tokens_s0
WHERE id = ANY (ARRAY(SELECT id FROM {_picked(stage, ":limit")}))
ORDER BY mint_timestamp, token_id
FOR UPDATE
"""


def release_by_token_id_sql(columns: str, *, delayed: bool) -> str:
    """End the leases on :token_ids (locked by the caller); claimable again after :retry_in when
    `delayed`, else at once."""
    due = "statement_timestamp() + :retry_in" if delayed else "NULL"
    return f"""
UPDATE tokens_s0 SET status = {WAITING_STATUS}, {end_lease(due)}
WHERE token_id = ANY (:token_ids)
RETURNING {columns}
"""


def abandon_sql(token_ids: str, why: str, *, keep: str = "'{}'::uuid[]") -> str:
    """An UPDATE ending the running attempts of the tokens `token_ids` (SQL for a uuid[]) but
    those of the job ids `keep`: failed, reason `abandoned`, saying `why`. An attempt still
    running when its token is claimed again or reaped was left by a runner that died (kill -9,
    a lost host): its history must not say `running` for ever."""
    ended = {"reason": "abandoned", "message": why}
    return f"""
UPDATE image_generation_jobs SET status = 'failed', completed_at = statement_timestamp(),
    error_data = coalesce(error_data, jsonb_build_object()) || '{json.dumps(ended)}'::jsonb
WHERE token_id = ANY ({token_ids}) AND status = 'running' AND id <> ALL ({keep})
"""


def reap_sql(columns: str) -> str:
    """Fail every unfinished token that used up :max_attempts and is held by no live lease, and
    end the attempts a dead runner left running on them."""
    abandoned = abandon_sql("ARRAY(SELECT id FROM reaped)", "its runner stopped before it ended")
    return f"""
WITH reaped AS (
    UPDATE tokens_s0 SET
        status = 'failed',
        error_data = {_NO_ERROR} || {MAX_ATTEMPTS_ERROR} || jsonb_build_object('reaped', true),
        {end_lease()}
    WHERE {status_in(ACTIVE_STATUSES)} AND {used_up(":max_attempts")}
      AND (lease_expires_at IS NULL OR lease_expires_at < statement_timestamp())
    RETURNING {columns}
), abandoned AS ({abandoned})
SELECT {columns} FROM reaped
"""


def _status(status: TokenStatus) -> str:
    return f"CAST('{status.value}' AS token_status)"


# Where a retried token resumes: the first stage whose output it does not hold (no image:
# generation; no metadata CID: upload; else reveal), read from the token itself so that it holds
# for a failure recorded by any path — a claim, a release, `reap` or an operator's `mark`.
*_EARLIER_STAGES, _LAST_STAGE = STAGES.values()
_RESUMING_STATUS = (
    "CASE "
    + " ".join(
        f"WHEN tokens_s0.{stage.output_column} IS NULL THEN {_status(stage.queued)}"
        for stage in _EARLIER_STAGES
    )
    + f" ELSE {_status(_LAST_STAGE.queued)} END"
)


def retry_sql(columns: str, *, chosen: bool, from_start: bool) -> str:
    """Send failed tokens (only those of :token_ids when `chosen`) back to the stage that failed
    (to detected, every stage again, when `from_start`), with their attempts reset and no lease
    or retry delay: claimable at once by exactly that stage. A checkpoint stays for the stage
    that resumes (what its side effect already did); from the start, none applies any more."""
    which = " AND token_id = ANY (:token_ids)" if chosen else ""
    status = _status(STAGES[StageName.GENERATION].queued) if from_start else _RESUMING_STATUS
    forget = "checkpoint = NULL, " if from_start else ""
    return f"""
UPDATE tokens_s0 SET status = {status}, attempts = 0, {forget}{end_lease()}
WHERE status = 'failed'{which}
RETURNING {columns}
"""
