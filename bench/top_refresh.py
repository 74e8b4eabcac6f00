"""What one `glisk top` refresh costs on a million tokens: the library call behind each frame
(`uow.pipeline_view.read()`, wall time, round trips included) and the database's own time for
its statements (planning + execution, from EXPLAIN ANALYZE), as medians.

    uv run python bench/top_refresh.py [--runs 31] [--tokens 1000000]

Two pipelines, each on a throwaway embedded server's database:
- busy: mid-mint, 70 % revealed, 1 % failed, the rest spread over the stages, a fleet of 100
  workers holding 10 tokens each (10 of them stalled), and history: an attempt row per finished
  token, 3 per second over the last hour;
- backlog: every token just minted and waiting for generation (the queue count is capped and
  estimated beyond COUNT_CAP).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg
from scratch import conninfo, machine, migrate_with_author, scratch_database

from glisk_cli.db import Database
from glisk_cli.db.planner import PlannerSettings
from glisk_cli.logging import configure_logging
from glisk_cli.repositories import pipeline_view_sql
from glisk_cli.repositories.token_sql import IN_INDEX_ORDER, THROUGH_INDEXES
from glisk_cli.uow import create_uow_factory

LEASE = timedelta(minutes=15)

_TOKENS = """
INSERT INTO tokens_s0 (token_id, author_id, minter_address, status, mint_timestamp)
SELECT n, (SELECT id FROM authors LIMIT 1), '0x00000000000000000000000000000000000000bb',
       CAST({status} AS token_status), now() - interval '4 days' + n * interval '300 ms'
FROM generate_series(1, %(tokens)s) AS n
"""
BUSY_STATUS = """CASE WHEN n %% 10 < 7 THEN 'revealed' WHEN n %% 100 = 71 THEN 'failed'
                  WHEN n %% 10 = 7 THEN 'detected' WHEN n %% 10 = 8 THEN 'uploading'
                  ELSE 'ready' END"""
BUSY = [
    # 100 workers x 10 tokens in generation, 10 of the workers stalled (their leases ran out)
    """UPDATE tokens_s0 SET status = 'generating', claimed_by = 'worker-' || (token_id / 10 %% 100),
           lease_id = gen_random_uuid(), updated_at = now() - interval '1 minute',
           lease_expires_at = now() + CASE WHEN token_id / 10 %% 100 < 10
                                           THEN interval '-5 minutes' ELSE interval '14 minutes' END
       WHERE token_id %% 10 = 7 AND token_id < 10000""",
    """UPDATE tokens_s0 SET error_data = '{"reason": "max_attempts", "message": "gave up"}',
           updated_at = now() - (token_id %% 7200) * interval '1 second'
       WHERE status = 'failed'""",
    # history: one succeeded attempt per finished token, the newest 3 a second over the last hour
    """INSERT INTO image_generation_jobs (token_id, service, status, created_at, completed_at)
       SELECT id, 'svc', 'succeeded', t, t FROM (
           SELECT id, now() - row_number() OVER (ORDER BY token_id DESC) * interval '333 ms' AS t
           FROM tokens_s0 WHERE status IN ('uploading', 'ready', 'revealed')) AS done""",
    """INSERT INTO ipfs_upload_records (token_id, record_type, status, completed_at)
       SELECT id, kind, 'succeeded', t FROM (
           SELECT id, now() - row_number() OVER (ORDER BY token_id DESC) * interval '333 ms' AS t
           FROM tokens_s0 WHERE status IN ('ready', 'revealed')) AS done,
           (VALUES ('image'), ('metadata')) AS kinds(kind)""",
    """INSERT INTO reveal_transactions (token_ids, status, confirmed_at)
       SELECT array_agg(id), 'confirmed', now() - min(token_id) * interval '30 ms'
       FROM tokens_s0 WHERE status = 'revealed' GROUP BY token_id / 100""",
    """INSERT INTO image_generation_jobs (token_id, service, status, error_data, completed_at)
       SELECT id, 'svc', 'failed', '{"reason": "timeout", "message": "timed out"}',
              now() - (token_id %% 3600) * interval '1 second'
       FROM tokens_s0 WHERE status = 'detected' AND token_id %% 1000 = 7""",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="a server to use instead of an embedded one")
    args = parser.parse_args()
    configure_logging("WARNING")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}, "
        f"load {os.getloadavg()[0]:.1f}, {args.tokens:,} tokens, {args.runs} runs"
    )
    for name, status, extra in (("busy", BUSY_STATUS, BUSY), ("backlog", "'detected'", [])):
        with scratch_database(args.database_url, "glisk_bench_top") as url:
            started = time.perf_counter()
            seed(url, args.tokens, status, extra)
            seeded = time.perf_counter() - started
            library, server = _measure(url, args.runs)
            print(
                f"{name:8} seeded in {seeded:.0f}s; refresh: library call "
                f"{statistics.median(library):.1f} ms, database time "
                f"{statistics.median(server):.1f} ms (medians; min {min(server):.1f}, "
                f"max {max(server):.1f})"
            )


def seed(url: str, tokens: int, status: str, extra: list[str]) -> None:
    migrate_with_author(url, "bench")
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute(_TOKENS.format(status=status).encode(), {"tokens": tokens})
        for statement in extra:
            conn.execute(statement.encode(), {})
        conn.execute("VACUUM ANALYZE")


def _measure(url: str, runs: int) -> tuple[list[float], list[float]]:
    """Milliseconds per refresh: the library call, and the server's time for its statements."""
    database = Database(url, pool_size=1)
    uow_factory = create_uow_factory(database)
    library: list[float] = []
    for _ in range(runs + 1):  # the first warms the connection and the caches; not counted
        started = time.perf_counter()
        with uow_factory() as uow:
            uow.pipeline_view.read(LEASE)
        library.append((time.perf_counter() - started) * 1000)
    database.dispose()
    server: list[float] = []
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        for _ in range(runs):
            total = 0.0
            for statement in pipeline_view_sql.STATEMENTS:
                total += _server_ms(conn, statement, settings=_PLANNED.get(statement))
            for stage in pipeline_view_sql.StageName:  # the estimate, when a queue is over the cap
                (count,) = conn.execute(_capped(stage)).fetchone() or (0,)
                if count > pipeline_view_sql.COUNT_CAP:
                    where = pipeline_view_sql.free_tokens(stage)
                    total += _server_ms(conn, f"SELECT 1 FROM tokens_s0 WHERE {where}", plan=True)
            server.append(total)
    return library[1:], server


def _capped(stage: pipeline_view_sql.StageName) -> bytes:
    where = pipeline_view_sql.free_tokens(stage)
    limit = pipeline_view_sql.COUNT_CAP + 1
    return f"SELECT count(*) FROM (SELECT 1 FROM tokens_s0 WHERE {where} LIMIT {limit}) s".encode()


# The planner settings `glisk top` reads these statements under (repositories/pipeline_view.py).
_PLANNED = {pipeline_view_sql.QUEUES: IN_INDEX_ORDER, pipeline_view_sql.LEASES: THROUGH_INDEXES}


def _server_ms(
    conn: psycopg.Connection,
    statement: str,
    *,
    plan: bool = False,
    settings: PlannerSettings | None = None,
) -> float:
    """Planning and execution time of `statement` (planning only when `plan`, under `settings`
    when given), as the server measured them."""
    options = "FORMAT JSON, SUMMARY" if plan else "ANALYZE, FORMAT JSON"
    with conn.transaction():
        if settings is not None:
            conn.execute(settings.before.encode())
        row = conn.execute(f"EXPLAIN ({options}) {statement}".encode()).fetchone()
    assert row is not None
    report = row[0][0]
    return report.get("Planning Time", 0.0) + report.get("Execution Time", 0.0)


if __name__ == "__main__":
    main()
