"""The statements behind `glisk top`, each served by an index (docs/architecture.md, "A live view
that stays cheap"): one refresh is these five statements (and, past COUNT_CAP, an EXPLAIN),
and none reads the tables' history.

- QUEUES: per stage, the tokens nobody holds, counted up to COUNT_CAP in the stage's queue index
  (an index-only scan that stops there), and the oldest one's mint, one probe of the same index.
- LEASES: every leased token, from the lease index (only leased tokens are in it), grouped by
  status and holder: live and expired leases, and retry delays (a lease nobody holds).
- DONE: what each stage finished in the last hour, per minute, from the history tables' indexes
  on finished attempts (migration 0006).
- FAILURES / RECENT_FAILURES: failed attempts and failed tokens in the last hour by reason, and
  the newest few, from the same indexes and `ix_tokens_s0_failed_at`.

Statuses are written in as literals, as in `token_sql.py`, so the planner matches the partial
indexes in every plan.
"""

from __future__ import annotations

from glisk_cli.models.literals import status_in
from glisk_cli.pipeline import STAGES, StageName, TokenStatus

# Beyond this many waiting tokens in one stage, a refresh takes PostgreSQL's estimate instead of
# counting: a count reads every index entry, and a backlog of hundreds of thousands would take
# most of a refresh's budget.
COUNT_CAP = 20_000
RECENT_FAILURES = 5
WINDOW = "interval '1 hour'"


def free_tokens(stage: StageName) -> str:
    """The predicate of a stage's tokens nobody holds: exactly its queue index's rows."""
    return f"lease_expires_at IS NULL AND {status_in(STAGES[stage].claimable)}"


def _queue(stage: StageName) -> str:
    where = free_tokens(stage)
    return f"""SELECT '{stage.value}',
    (SELECT count(*) FROM (SELECT 1 FROM tokens_s0 WHERE {where} LIMIT {COUNT_CAP + 1}) AS capped),
    (SELECT min(mint_timestamp) FROM tokens_s0 WHERE {where}),
    statement_timestamp()"""


QUEUES = "\nUNION ALL\n".join(_queue(stage) for stage in StageName)


def estimate(stage: StageName) -> str:
    """The plan of this, not its result: how many of `stage`'s free tokens the planner expects
    (when there are more than COUNT_CAP)."""
    return f"EXPLAIN (FORMAT JSON) SELECT 1 FROM tokens_s0 WHERE {free_tokens(stage)}"


LEASES = """
SELECT status, claimed_by,
    count(*) FILTER (WHERE lease_id IS NOT NULL AND lease_expires_at >= statement_timestamp()),
    count(*) FILTER (WHERE lease_id IS NOT NULL AND lease_expires_at < statement_timestamp()),
    count(*) FILTER (WHERE lease_id IS NULL),
    min(lease_expires_at) FILTER (WHERE lease_id IS NOT NULL
                                  AND lease_expires_at >= statement_timestamp()),
    max(lease_expires_at) FILTER (WHERE lease_id IS NOT NULL),
    max(updated_at) FILTER (WHERE lease_id IS NOT NULL),
    min(mint_timestamp) FILTER (WHERE lease_id IS NULL OR lease_expires_at < statement_timestamp())
FROM tokens_s0
WHERE lease_expires_at IS NOT NULL
GROUP BY status, claimed_by
"""


def _minutes_ago(column: str) -> str:
    """Minutes ago, 0 for the last minute (a time a little ahead of the database clock counts as
    now); in double precision, as `extract` computes in numeric, slower for every row."""
    return f"greatest(0, floor(date_part('epoch', statement_timestamp() - {column}) / 60))::int"


_SINCE = f"statement_timestamp() - {WINDOW}"

# An upload attempt records the image and then the metadata; the token is done with its metadata.
DONE = f"""
SELECT '{StageName.GENERATION.value}', {_minutes_ago("completed_at")}, count(*)
FROM image_generation_jobs
WHERE status = 'succeeded' AND completed_at IS NOT NULL AND completed_at > {_SINCE}
GROUP BY 2
UNION ALL
SELECT '{StageName.UPLOAD.value}', {_minutes_ago("completed_at")}, count(*)
FROM ipfs_upload_records
WHERE status = 'succeeded' AND record_type = 'metadata' AND completed_at IS NOT NULL
  AND completed_at > {_SINCE}
GROUP BY 2
UNION ALL
SELECT '{StageName.REVEAL.value}', {_minutes_ago("confirmed_at")},
    sum(cardinality(token_ids))::bigint
FROM reveal_transactions
WHERE status = 'confirmed' AND confirmed_at IS NOT NULL AND confirmed_at > {_SINCE}
GROUP BY 2
"""

_FAILED = TokenStatus.FAILED.value
# A failure says why (`reason`: max_attempts, timeout, bad_answer, …, work/protocol.py); a
# command that exited with another status than 0 is counted by that status.
_EXIT = "'exit ' || (error_data->>'exit_status')"
_REASON = (
    f"coalesce(CASE WHEN error_data->>'reason' = 'exit' THEN {_EXIT} END, "
    f"error_data->>'reason', error_data->>'code', {_EXIT}, 'unknown')"
)


# Attempts `glisk work` ended without anything going wrong: the runner shut down gracefully and
# handed the token back, or the service asked for a cooldown. They are history, not failures.
def _not_failure(row: str) -> str:
    return f"coalesce({row}.error_data->>'reason', '') NOT IN ('shutdown', 'retry_after')"


# Each row counts tokens: a failed reveal transaction counts the tokens it was to reveal.
FAILURES = f"""
SELECT reason, sum(tokens)::bigint FROM (
    SELECT {_REASON} AS reason, 1 AS tokens FROM image_generation_jobs
    WHERE status = 'failed' AND completed_at IS NOT NULL AND completed_at > {_SINCE}
      AND {_not_failure("image_generation_jobs")}
    UNION ALL
    SELECT {_REASON}, 1 FROM ipfs_upload_records
    WHERE status = 'failed' AND completed_at IS NOT NULL AND completed_at > {_SINCE}
      AND {_not_failure("ipfs_upload_records")}
    UNION ALL
    SELECT 'reveal_failed', cardinality(token_ids) FROM reveal_transactions
    WHERE status = 'failed' AND created_at > {_SINCE} AND {_not_failure("reveal_transactions")}
    UNION ALL
    SELECT {_REASON}, 1 FROM tokens_s0
    WHERE status = '{_FAILED}' AND updated_at > {_SINCE}
) AS failures
GROUP BY reason
"""

_NEWEST = f"ORDER BY 1 DESC LIMIT {RECENT_FAILURES}"

# History rows name their token by tokens_s0.id; the on-chain id is one primary-key probe each.
RECENT = f"""
(SELECT job.completed_at, '{StageName.GENERATION.value}', token.token_id, job.error_data
 FROM image_generation_jobs AS job LEFT JOIN tokens_s0 AS token ON token.id = job.token_id
 WHERE job.status = 'failed' AND job.completed_at IS NOT NULL AND {_not_failure("job")} {_NEWEST})
UNION ALL
(SELECT up.completed_at, '{StageName.UPLOAD.value}', token.token_id, up.error_data
 FROM ipfs_upload_records AS up LEFT JOIN tokens_s0 AS token ON token.id = up.token_id
 WHERE up.status = 'failed' AND up.completed_at IS NOT NULL AND {_not_failure("up")} {_NEWEST})
UNION ALL
(SELECT updated_at, error_data->>'stage', token_id, error_data
 FROM tokens_s0 WHERE status = '{_FAILED}' {_NEWEST})
{_NEWEST}
"""

STATEMENTS = (QUEUES, LEASES, DONE, FAILURES, RECENT)
