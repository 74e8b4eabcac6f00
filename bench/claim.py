"""Claim throughput: worker processes draining the generation queue, library against raw SQL.

N worker processes (default 4) drain 20,000 freshly seeded detected tokens, each looping
`uow.tokens.claim(stage="generation", limit=B, ...)` in its own Unit of Work until it gets an
empty batch; then the same through plain psycopg, running the very statement the library sends
(captured from it once, so the two can never drift apart), one transaction per claim. Both for
B = 1, 10 and 100, on the same server, in one run. Two more scenarios, at B = 10:

- cycle: claim, commit, then move every claimed token to uploading in a second transaction per
  batch (`uow.tokens.transition(..., TokenStatus.UPLOADING, worker=..., image_path=...)`), as a
  real worker does: its claim commits at once (from then on the lease holds the tokens), the
  slow work happens outside any transaction, and the results are recorded afterwards. The raw
  cycle does the same statements by hand: lock the row, check the lease holder, update it;
- history: the plain claim with 200,000 revealed tokens, minted earlier, already in the table
  (the queue must not slow down as history grows).

The B = 1 and cycle drains are smaller (1,000 and 2,000 tokens; see --small-tokens and
--cycle-tokens): at the library's rates today 20,000 would take minutes each. Workers log at
WARNING, a worker's default LOG_LEVEL (the Unit of Work's INFO records are filtered out).

Every claimed token id goes back to the parent, which checks that each seeded token was claimed
exactly once. The machine is shared and noisy, so library and raw runs are interleaved (each
repetition flips who goes first) and medians are reported. Workers are spawned once and reused;
each run starts when all of them are through a barrier.

    uv run python bench/claim.py                     # own embedded server; 8 min under load
    uv run python bench/claim.py --quick             # smoke run: small drains, one repetition
    uv run python bench/claim.py --profile claim.prof    # + one profiled library run (B = 10)
    uv run python bench/claim.py --database-url postgresql+psycopg://user:pw@host/db

With --database-url the script creates a scratch database on that server, and drops it at the
end; without, it starts its own embedded server (no fsync) in a temporary directory and removes
it at the end. Either way, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing as mp
import os
import platform
import pstats
import queue
import statistics
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any, LiteralString, cast

import psycopg
from scratch import conninfo, migrate_with_author, no_interrupts, scratch_database
from sqlalchemy import event

from glisk_cli.database import setup_db_session
from glisk_cli.logging import configure_logging
from glisk_cli.models import TokenStatus
from glisk_cli.repositories.token import TokenRepository
from glisk_cli.uow import UnitOfWork, create_uow_factory

STAGE = "generation"
LEASE = timedelta(minutes=15)
MAX_ATTEMPTS = 5
GOAL_BATCH = 10  # the batch size of the goal, the full cycle and the history run
# Stand-ins for the worker name and the limit while the library's statement is captured; the
# raw path puts its own values in their place.
WORKER_MARK = "__bench_worker__"
LIMIT_MARK = 997
RUN_TIMEOUT_S = 600.0

# The library's transition, for the raw full cycle: lock the token's row (all its columns, in
# table order, as the library loads it), then write the move to uploading.
RAW_LOCK = (
    "SELECT id, token_id, author_id, minter_address, status, mint_timestamp, image_path, "
    "image_cid, metadata_cid, reveal_tx_hash, error_data, claimed_by, lease_expires_at, "
    "attempts, created_at, updated_at FROM tokens_s0 WHERE token_id = ANY(%s) "
    "ORDER BY token_id FOR UPDATE"
)
# Positions in a token row, in RAW_LOCK and in the claim's RETURNING alike.
ID, TOKEN_ID, STATUS, MINT, CLAIMED_BY = 0, 1, 4, 5, 11
RAW_UPLOADING = (
    "UPDATE tokens_s0 SET status = 'uploading'::token_status, image_path = %s, claimed_by = NULL, "
    "lease_expires_at = NULL, attempts = 0, updated_at = %s WHERE id = %s"
)


@dataclass(frozen=True)
class Job:
    path: str  # "library" or "raw"
    batch: int
    cycle: bool  # claim, then move each claimed token to uploading
    profile: str | None = None  # worker 0 writes a cProfile of this run here


@dataclass
class WorkerResult:
    token_ids: list[int]
    claims: int
    started: float  # time.monotonic(): one clock for every process on the machine
    finished: float
    error: str | None = None


@dataclass
class Run:
    scenario: str  # "claim", "cycle" or "history"
    path: str
    batch: int
    tokens: int
    rate: float  # tokens per second, first worker start to last worker finish
    duplicates: int
    missing: int
    claims: int


@dataclass(frozen=True)
class ClaimStatement:
    """The library's claim as the driver receives it: SQL text and parameters."""

    text: LiteralString  # not a literal, but SQLAlchemy's compilation of one: safe to run
    params: dict[str, Any]
    worker_key: str
    limit_key: str


# -- workers (separate processes) ---------------------------------------------------------------


def image_path(token_id: int) -> str:
    return f"/var/lib/glisk/images/{token_id}.png"


def drain_library(
    uow_factory: Callable[[], UnitOfWork], worker: str, batch: int, cycle: bool
) -> tuple[list[int], int]:
    """Claim through the Unit of Work until a claim comes back empty."""
    claimed: list[int] = []
    claims = 0
    while True:
        with uow_factory() as uow:
            tokens = uow.tokens.claim(STAGE, batch, worker, LEASE, MAX_ATTEMPTS)
        claims += 1
        if not tokens:
            return claimed, claims
        if cycle:  # the claim has committed; the image would be generated here
            with uow_factory() as uow:
                for token in tokens:
                    uow.tokens.transition(
                        token.token_id,
                        TokenStatus.UPLOADING,
                        worker=worker,
                        image_path=image_path(token.token_id),
                    )
        claimed.extend(token.token_id for token in tokens)


def drain_raw(
    conn: psycopg.Connection, statement: ClaimStatement, worker: str, batch: int, cycle: bool
) -> tuple[list[int], int]:
    """The same work in plain psycopg: the library's SQL, one transaction per claim."""
    params = {**statement.params, statement.worker_key: worker, statement.limit_key: batch}
    claimed: list[int] = []
    claims = 0
    while True:
        rows = conn.execute(statement.text, params).fetchall()
        conn.commit()
        claims += 1
        # What the library hands back: tokens not failed for max_attempts, oldest mint first.
        tokens = [row for row in rows if row[STATUS] != "failed"]
        tokens.sort(key=lambda row: (row[MINT], row[TOKEN_ID]))
        if not tokens:
            return claimed, claims
        if cycle:  # the library's transition: lock the row, check the lease holder, update it
            for token in tokens:
                [row] = conn.execute(RAW_LOCK, [[token[TOKEN_ID]]]).fetchall()
                if row[CLAIMED_BY] != worker or row[STATUS] != "generating":
                    raise RuntimeError(f"token {token[TOKEN_ID]} is not leased to {worker}")
                path = image_path(token[TOKEN_ID])
                conn.execute(RAW_UPLOADING, [path, datetime.now(UTC), row[ID]])
            conn.commit()
        claimed.extend(token[TOKEN_ID] for token in tokens)


def worker_main(
    index: int,
    url: str,
    statement: ClaimStatement,
    jobs: mp.Queue,
    results: mp.Queue,
    barrier: Barrier,
) -> None:
    """One worker process: its own engine and its own raw connection, reused for every job."""
    try:
        configure_logging("WARNING")  # a worker's default LOG_LEVEL
        uow_factory = create_uow_factory(setup_db_session(url, pool_size=1))
        conn = psycopg.connect(conninfo(url))
        worker = f"bench-{index}"
        results.put(index)  # ready
        while (job := jobs.get()) is not None:
            # CPU time, not wall time: what the worker itself spends, whatever the machine's load.
            profiler = cProfile.Profile(time.process_time) if job.profile and index == 0 else None
            try:
                barrier.wait(timeout=RUN_TIMEOUT_S)
                started = time.monotonic()
                if profiler:
                    profiler.enable()
                if job.path == "library":
                    ids, claims = drain_library(uow_factory, worker, job.batch, job.cycle)
                else:
                    ids, claims = drain_raw(conn, statement, worker, job.batch, job.cycle)
                finished = time.monotonic()
                if profiler and job.profile:
                    profiler.disable()
                    profiler.dump_stats(job.profile)
                results.put(WorkerResult(ids, claims, started, finished))
            except Exception:
                results.put(WorkerResult([], 0, 0.0, 0.0, error=traceback.format_exc()))
    except KeyboardInterrupt:  # only if started by hand: the pool starts workers deaf to Ctrl-C
        pass


# -- the parent: server, database, seeding, runs ---------------------------------------------


def capture_claim(url: str) -> ClaimStatement:
    """Run one library claim in a transaction that is rolled back, and keep what it sent."""
    session_factory = setup_db_session(url, pool_size=1)
    engine = session_factory.kw["bind"]
    sent: list[tuple[str, dict[str, Any]]] = []

    def keep(_conn: Any, _cursor: Any, text: str, params: Any, _context: Any, _many: Any) -> None:
        if "FOR UPDATE SKIP LOCKED" in text:
            sent.append((text, dict(params)))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        with session_factory() as session:
            TokenRepository(session).claim(STAGE, LIMIT_MARK, WORKER_MARK, LEASE, MAX_ATTEMPTS)
            session.rollback()
    finally:
        engine.dispose()
    [(text, params)] = sent
    [worker_key] = [key for key, value in params.items() if value == WORKER_MARK]
    [limit_key] = [key for key, value in params.items() if value == LIMIT_MARK]
    return ClaimStatement(cast(LiteralString, text), params, worker_key, limit_key)


def seed(conn: psycopg.Connection, tokens: int, history: int) -> None:
    """An empty queue, then `history` revealed tokens and `tokens` detected ones minted after."""
    conn.execute("TRUNCATE tokens_s0 CASCADE")
    conn.execute(
        """
        INSERT INTO tokens_s0 (token_id, author_id, minter_address, status, mint_timestamp,
                               image_path, image_cid, metadata_cid, reveal_tx_hash)
        SELECT n, (SELECT id FROM authors LIMIT 1), '0x00000000000000000000000000000000000000bb',
               CASE WHEN n <= %(history)s THEN 'revealed' ELSE 'detected' END::token_status,
               timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second',
               CASE WHEN n <= %(history)s THEN '/var/lib/glisk/images/' || n || '.png' END,
               CASE WHEN n <= %(history)s THEN 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oc'
                                                || lpad(n::text, 10, '0') END,
               CASE WHEN n <= %(history)s THEN 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzj'
                                                || lpad(n::text, 10, '0') END,
               CASE WHEN n <= %(history)s THEN '0x' || md5(n::text) || md5((-n)::text) END
        FROM generate_series(1, %(last)s) AS n
        """,
        {"history": history, "last": history + tokens},
    )
    conn.execute("VACUUM ANALYZE tokens_s0")


class WorkerPool:
    """Worker processes spawned once (no fork after engines exist), fed one job at a time."""

    def __init__(self, count: int, url: str, statement: ClaimStatement) -> None:
        context = mp.get_context("spawn")
        self.results: mp.Queue = context.Queue()
        self.jobs: list[mp.Queue] = [context.Queue() for _ in range(count)]
        barrier = context.Barrier(count)
        self.processes: list[SpawnProcess] = [
            context.Process(
                target=worker_main,
                args=(index, url, statement, self.jobs[index], self.results, barrier),
                daemon=True,
            )
            for index in range(count)
        ]
        with no_interrupts():  # inherited: Ctrl-C is the parent's to handle, not the workers'
            for process in self.processes:
                process.start()
        for _ in self.processes:
            self._get()  # ready

    def run(self, job: Job) -> list[WorkerResult]:
        for jobs in self.jobs:
            jobs.put(job)
        results: list[WorkerResult] = [self._get() for _ in self.processes]
        for result in results:
            if result.error:
                raise RuntimeError(f"a worker failed:\n{result.error}")
        return results

    def _get(self) -> Any:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                return self.results.get(timeout=1)
            except queue.Empty:
                if dead := [p.pid for p in self.processes if not p.is_alive()]:
                    raise RuntimeError(f"worker processes {dead} died") from None
        raise TimeoutError(f"workers gave no answer within {RUN_TIMEOUT_S:.0f}s")

    def close(self) -> None:
        """Idle workers leave when told; busy ones (after Ctrl-C) are terminated."""
        with no_interrupts():
            for jobs in self.jobs:
                jobs.put(None)
            deadline = time.monotonic() + 5
            for process in self.processes:
                process.join(timeout=max(0.1, deadline - time.monotonic()))
                if process.is_alive():
                    process.terminate()
                    process.join(timeout=5)


def measure(
    pool: WorkerPool, conn: psycopg.Connection, scenario: str, job: Job, tokens: int, history: int
) -> Run:
    seed(conn, tokens, history)
    results = pool.run(job)
    counts = Counter(token_id for result in results for token_id in result.token_ids)
    expected = range(history + 1, history + tokens + 1)
    missing = sum(1 for token_id in expected if token_id not in counts)
    duplicates = sum(count - 1 for count in counts.values())
    elapsed = max(r.finished for r in results) - min(r.started for r in results)
    want = TokenStatus.UPLOADING if job.cycle else TokenStatus.GENERATING
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE status = %s), count(*) FROM tokens_s0 WHERE token_id > %s",
        [want.value, history],
    ).fetchone()
    if row != (tokens, tokens) or missing or duplicates or len(counts) - tokens:
        raise RuntimeError(
            f"{scenario} {job.path} B={job.batch}: {duplicates} duplicates, {missing} missing, "
            f"database has {row} (in {want.value}, all) of {tokens}"
        )
    claims = sum(result.claims for result in results)
    run = Run(scenario, job.path, job.batch, tokens, tokens / elapsed, duplicates, missing, claims)
    print(f"  {scenario:<8} {job.path:<8} B={job.batch:<4} {tokens:>6} tokens  "
          f"{run.rate:>7.0f} tokens/s  {claims:>6} claims", file=sys.stderr)  # fmt: skip
    return run


def report(runs: list[Run], workers: int) -> None:
    def select(scenario: str, path: str, batch: int) -> list[Run]:
        return [r for r in runs if (r.scenario, r.path, r.batch) == (scenario, path, batch)]

    def median(scenario: str, path: str, batch: int) -> float:
        return statistics.median(r.rate for r in select(scenario, path, batch))

    print(f"{'scenario':<9} {'path':<8} {'B':>4} {'workers':>7} {'tokens':>7} {'tokens/s':>9} "
          f"{'min-max':>13} {'dups':>5} {'lib/raw':>8}")  # fmt: skip
    keys = dict.fromkeys((r.scenario, r.batch) for r in runs)
    for scenario, batch in keys:
        for path in ("library", "raw"):
            same = select(scenario, path, batch)
            if not same:
                continue
            rates = [r.rate for r in same]
            ratio = ""
            if path == "library" and select(scenario, "raw", batch):
                ratio = f"{median(scenario, path, batch) / median(scenario, 'raw', batch):.2f}"
            spread = f"{min(rates):.0f}-{max(rates):.0f}"
            print(f"{scenario:<9} {path:<8} {batch:>4} {workers:>7} {same[0].tokens:>7} "
                  f"{statistics.median(rates):>9.0f} {spread:>13} "
                  f"{sum(r.duplicates for r in same):>5} {ratio:>8}")  # fmt: skip
    print()
    b = GOAL_BATCH
    for path in ("library", "raw"):
        plain, grown = median("claim", path, b), median("history", path, b)
        print(f"history, {path}, B={b}: {plain:.0f} -> {grown:.0f} tokens/s "
              f"({(1 - grown / plain) * 100:+.1f}% slowdown; goal <= 20%)")  # fmt: skip
    goal = median("claim", "library", b) / median("claim", "raw", b)
    print(f"library/raw, claim at B={b}, {workers} workers: {goal:.2f} (goal >= 0.75)")


def show_profile(path: str) -> None:
    print(f"\n# CPU profile of worker 0, library claim, B={GOAL_BATCH} (full stats: {path})")
    pstats.Stats(path).sort_stats("cumulative").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="use this server (a scratch database on it)")
    parser.add_argument("--quick", action="store_true", help="small drains, one repetition")
    parser.add_argument("--tokens", type=int, default=20_000, help="tokens per drain")
    parser.add_argument("--small-tokens", type=int, default=1_000, help="tokens per B=1 drain")
    parser.add_argument("--cycle-tokens", type=int, default=2_000, help="tokens per cycle drain")
    parser.add_argument("--history", type=int, default=200_000, help="revealed rows (history)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--profile", metavar="FILE", help="profile one library run into FILE")
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.small_tokens, args.cycle_tokens = 2_000, 500, 500
        args.history, args.repetitions = 20_000, 1
    batches = sorted(set(args.batches) | {GOAL_BATCH})
    profile = str(Path(args.profile).absolute()) if args.profile else None
    configure_logging("WARNING")

    def schedule(repetition: int) -> list[tuple[str, Job, int, int]]:
        """One repetition: (scenario, job, tokens, history) with library and raw interleaved."""
        paths = ("library", "raw") if repetition % 2 == 0 else ("raw", "library")
        plan = [
            ("claim", Job(path, b, False), args.small_tokens if b == 1 else args.tokens, 0)
            for b in batches
            for path in paths
        ]
        goal = GOAL_BATCH
        plan += [("cycle", Job(path, goal, True), args.cycle_tokens, 0) for path in paths]
        return plan + [
            ("history", Job(path, goal, False), args.tokens, args.history) for path in paths
        ]

    b = GOAL_BATCH
    runs: list[Run] = []
    with (
        scratch_database(args.database_url) as url,
        psycopg.connect(conninfo(url), autocommit=True) as conn,
    ):
        migrate_with_author(url, "bench")
        version = conn.execute("SHOW server_version").fetchone()
        statement = capture_claim(url)
        print(f"# {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}"
              f" · PostgreSQL {version[0] if version else '?'}"
              f" · {'root' if os.geteuid() == 0 else 'not root'}"
              f" · load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {args.workers} workers · "
              f"{args.repetitions} repetitions, medians · history {args.history} rows",
              flush=True)  # fmt: skip
        pool = WorkerPool(args.workers, url, statement)
        try:
            for path in ("library", "raw"):  # warm-up: statement caches, prepared statements
                for scenario, cycle in (("warm-up", False), ("warm-up+", True)):
                    measure(pool, conn, scenario, Job(path, b, cycle), 1_000, 0)
            for repetition in range(args.repetitions):
                for scenario, job, tokens, history in schedule(repetition):
                    runs.append(measure(pool, conn, scenario, job, tokens, history))
            if profile:
                measure(pool, conn, "profile", Job("library", b, False, profile), args.tokens, 0)
        finally:
            pool.close()
    print(f"# load average at the end: {os.getloadavg()[0]:.1f}")
    report(runs, args.workers)
    if profile:
        show_profile(profile)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted; the scratch database and server are gone", file=sys.stderr)
        sys.exit(130)
