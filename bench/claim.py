"""Claim throughput: worker processes draining the generation queue — the library against the
minimal raw claim, and the library's full cycle against pgqueuer's drain.

N worker processes (default 4) drain 20,000 freshly seeded detected tokens, at B = 1, 10, 100:

- raw: the minimal correct claim, sent by plain psycopg, one transaction per claim —
  `WITH c AS (SELECT id … WHERE status = 'detected' ORDER BY mint_timestamp LIMIT B FOR UPDATE
  SKIP LOCKED) UPDATE … RETURNING` the same columns the library returns. The floor any claim
  pays on this server;
- library: `with uow_factory() as uow: uow.tokens.claim("generation", B, worker, lease)`, the
  loop a worker writes, with everything the library's claim does beyond the floor (expired
  leases taken over first, retry delays honoured, exhausted tokens failed, a fenced lease id);
- raw-lib: the library's own claim statement sent by plain psycopg, which splits the library's
  distance from the floor into what its statement costs and what the library adds around it.

At B = 10, two more scenarios:

- cycle: the library claims, commits, then moves the batch to uploading with `advance` in a
  second Unit of Work, as a real worker does; measured against pgqueuer's drain (5 consumers,
  batch 10, dequeue + acknowledge; bench/peers/pgqueuer_drain.py) on a database of the same
  server in the same run, when --pgqueuer-python names a Python that has pgqueuer;
- history: the plain claim with 200,000 revealed tokens already in the table (the queue must
  not slow down as history grows).

Every claimed token id goes back to the parent, which checks that each seeded token was claimed
exactly once (and, for the cycle, moved). The machine is shared and noisy, so the paths are
interleaved (each repetition flips who goes first) and medians are reported. Workers are spawned
once and reused; each run starts when all of them are through a barrier.

    uv run python bench/claim.py --pgqueuer-python /tmp/pgq/bin/python
    uv run python bench/claim.py --quick             # smoke run: small drains, one repetition
    uv run python bench/claim.py --profile claim.prof    # + one profiled library run (B = 10)
    uv run python bench/claim.py --database-url postgresql+psycopg://user:pw@host/db

With --database-url the script creates scratch databases on that server, and drops them at the
end; without, it starts its own embedded server (no fsync) in a temporary directory and removes
it at the end. Either way, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing as mp
import os
import pstats
import queue
import statistics
import subprocess
import sys
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any, LiteralString, cast

import psycopg
from scratch import (
    conninfo,
    machine,
    migrate_with_author,
    no_interrupts,
    scratch_database,
    sibling_database,
)

from glisk_cli.db import Database
from glisk_cli.logging import configure_logging
from glisk_cli.models import TokenStatus
from glisk_cli.pipeline import stage_named
from glisk_cli.repositories.array_literal import array_literal
from glisk_cli.repositories.token_records import TOKEN_COLUMNS
from glisk_cli.repositories.token_sql import claim_sql
from glisk_cli.uow import UnitOfWork, create_uow_factory

STAGE = "generation"
LEASE = timedelta(minutes=15)
GOAL_BATCH = 10  # the batch size of the goals, the cycle and the history run
RUN_TIMEOUT_S = 600.0
PEER = Path(__file__).with_name("peers") / "pgqueuer_drain.py"

# The floor: the minimal correct claim, returning what the library returns.
RAW_CLAIM = cast(  # assembled from constants
    LiteralString,
    "WITH c AS (SELECT id FROM tokens_s0 WHERE status = 'detected' ORDER BY mint_timestamp "
    "LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
    "UPDATE tokens_s0 SET status = 'generating', claimed_by = %(worker)s, "
    "lease_expires_at = statement_timestamp() + %(lease)s, attempts = attempts + 1, "
    "updated_at = now() FROM c WHERE tokens_s0.id = c.id RETURNING "
    + ", ".join(f"tokens_s0.{column}" for column in TOKEN_COLUMNS),
)
TOKEN_ID = TOKEN_COLUMNS.index("token_id")
# The library's claim is one job (one lease id) unless told otherwise.
LIBRARY_CLAIM = cast(LiteralString, claim_sql(stage_named(STAGE), GOAL_BATCH, GOAL_BATCH))


def one_lease() -> str:
    """The lease ids parameter of a claim that is one job."""
    return array_literal([uuid.uuid4()])


@dataclass(frozen=True)
class Job:
    path: str  # "library" or "raw"
    batch: int
    cycle: bool  # claim, then advance the batch to uploading
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
    path: str  # "library", "raw" or "pgqueuer"
    batch: int
    tokens: int
    rate: float  # tokens per second, first worker start to last worker finish
    claims: int


# -- workers (separate processes) ---------------------------------------------------------------


def drain_library(
    uow_factory: Callable[[], UnitOfWork], worker: str, batch: int, cycle: bool
) -> tuple[list[int], int]:
    """Claim through the Unit of Work until a claim comes back empty."""
    claimed: list[int] = []
    claims = 0
    while True:
        with uow_factory() as uow:
            tokens = uow.tokens.claim(STAGE, batch, worker, LEASE)
        claims += 1
        if not tokens:
            return claimed, claims
        if cycle:  # the claim has committed; the image would be generated here
            with uow_factory() as uow:
                result = uow.tokens.advance(
                    [(token, {"image_path": f"images/{token.token_id}.png"}) for token in tokens]
                )
            if result.refused:
                raise RuntimeError(f"advance refused {result.refused}")
        claimed.extend(token.token_id for token in tokens)


def drain_raw(
    conn: psycopg.Connection, worker: str, batch: int, sql: LiteralString = RAW_CLAIM
) -> tuple[list[int], int]:
    """A claim statement in plain psycopg, one transaction per claim: the minimal one, or the
    library's own (`raw-lib`: what the library's statement costs without the library)."""
    params: dict[str, Any] = {"limit": batch, "worker": worker, "lease": LEASE, "max_attempts": 5}
    claimed: list[int] = []
    claims = 0
    while True:
        params["lease_id"] = uuid.uuid4()  # the minimal claim's
        params["lease_ids"] = one_lease()  # the library's
        rows = conn.execute(sql, params).fetchall()
        conn.commit()
        claims += 1
        if not rows:
            return claimed, claims
        claimed.extend(row[TOKEN_ID] for row in rows)


def worker_main(index: int, url: str, jobs: mp.Queue, results: mp.Queue, barrier: Barrier) -> None:
    """One worker process: its own engine and its own raw connection, reused for every job."""
    try:
        configure_logging("WARNING")  # a worker's default LOG_LEVEL
        uow_factory = create_uow_factory(Database(url, pool_size=1))
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
                elif job.path == "raw-lib":
                    sql = cast(LiteralString, claim_sql(stage_named(STAGE), job.batch, job.batch))
                    ids, claims = drain_raw(conn, worker, job.batch, sql)
                else:
                    ids, claims = drain_raw(conn, worker, job.batch)
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

    def __init__(self, count: int, url: str) -> None:
        context = mp.get_context("spawn")
        self.results: mp.Queue = context.Queue()
        self.jobs: list[mp.Queue] = [context.Queue() for _ in range(count)]
        barrier = context.Barrier(count)
        self.processes: list[SpawnProcess] = [
            context.Process(
                target=worker_main,
                args=(index, url, self.jobs[index], self.results, barrier),
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
    return _announce(Run(scenario, job.path, job.batch, tokens, tokens / elapsed, claims))


def measure_pgqueuer(python: str, url: str, jobs: int) -> Run:
    """pgqueuer's drain of `jobs` jobs on `url` (its own database), run by `python`."""
    dsn = conninfo(url)
    argv = [
        python,
        str(PEER),
        "--dsn",
        dsn,
        "--jobs",
        str(jobs),
        "--consumers",
        "5",
        "--batch",
        str(GOAL_BATCH),
    ]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    if result["jobs"] != jobs or result["left"]:
        raise RuntimeError(f"pgqueuer drained {result['jobs']} of {jobs}: {result}")
    return _announce(Run("cycle", "pgqueuer", GOAL_BATCH, jobs, result["rate"], 0))


def _announce(run: Run) -> Run:
    print(
        f"  {run.scenario:<8} {run.path:<8} B={run.batch:<4} {run.tokens:>6} tokens  "
        f"{run.rate:>7.0f} tokens/s  {run.claims:>6} claims",
        file=sys.stderr,
    )
    return run


def report(runs: list[Run], workers: int) -> None:
    def select(scenario: str, path: str, batch: int) -> list[Run]:
        return [r for r in runs if (r.scenario, r.path, r.batch) == (scenario, path, batch)]

    def median(scenario: str, path: str, batch: int) -> float:
        return statistics.median(r.rate for r in select(scenario, path, batch))

    print(
        f"{'scenario':<9} {'path':<9} {'B':>4} {'tokens':>7} {'tokens/s':>9} "
        f"{'min-max':>13} {'ratio':>6}"
    )
    keys = dict.fromkeys((r.scenario, r.batch) for r in runs)
    for scenario, batch in keys:
        baseline = "pgqueuer" if scenario == "cycle" else "raw"
        for path in ("library", "raw-lib", "raw", "pgqueuer"):
            same = select(scenario, path, batch)
            if not same:
                continue
            rates = [r.rate for r in same]
            ratio = ""
            if path in ("library", "raw-lib") and select(scenario, baseline, batch):
                ratio = f"{median(scenario, path, batch) / median(scenario, baseline, batch):.2f}"
            spread = f"{min(rates):.0f}-{max(rates):.0f}"
            print(
                f"{scenario:<9} {path:<9} {batch:>4} {same[0].tokens:>7} "
                f"{statistics.median(rates):>9.0f} {spread:>13} {ratio:>6}"
            )
    print()
    b = GOAL_BATCH
    for path in ("library", "raw"):
        if select("history", path, b):
            plain, grown = median("claim", path, b), median("history", path, b)
            print(
                f"history, {path}, B={b}: {plain:.0f} -> {grown:.0f} tokens/s "
                f"({(1 - grown / plain) * 100:+.1f}% slowdown; goal <= 20%)"
            )
    goal = median("claim", "library", b) / median("claim", "raw", b)
    print(f"library claim / raw claim, B={b}, {workers} workers: {goal:.2f} (goal >= 0.8)")
    if select("cycle", "pgqueuer", b):
        cycle = median("cycle", "library", b) / median("cycle", "pgqueuer", b)
        print(f"library cycle / pgqueuer drain, B={b}: {cycle:.2f} (goal >= 1.0)")


def show_profile(path: str) -> None:
    print(f"\n# CPU profile of worker 0, library claim, B={GOAL_BATCH} (full stats: {path})")
    pstats.Stats(path).sort_stats("cumulative").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="use this server (a scratch database on it)")
    parser.add_argument("--pgqueuer-python", help="a Python with pgqueuer and asyncpg")
    parser.add_argument("--quick", action="store_true", help="small drains, one repetition")
    parser.add_argument("--tokens", type=int, default=20_000, help="tokens per drain")
    parser.add_argument("--small-tokens", type=int, default=2_000, help="tokens per B=1 drain")
    parser.add_argument("--history", type=int, default=200_000, help="revealed rows (history)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--profile", metavar="FILE", help="profile one library run into FILE")
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.small_tokens, args.history, args.repetitions = 4_000, 500, 20_000, 1
    batches = sorted(set(args.batches) | {GOAL_BATCH})
    profile = str(Path(args.profile).absolute()) if args.profile else None
    configure_logging("WARNING")
    b = GOAL_BATCH

    def schedule(repetition: int) -> list[tuple[str, Job | None, int, int]]:
        """One repetition: (scenario, job, tokens, history), paths interleaved; job None is
        pgqueuer's drain."""
        paths = ("library", "raw") if repetition % 2 == 0 else ("raw", "library")
        plan: list[tuple[str, Job | None, int, int]] = [
            ("claim", Job(path, n, False), args.small_tokens if n == 1 else args.tokens, 0)
            for n in batches
            for path in (*paths, "raw-lib")
        ]
        cycle: list[tuple[str, Job | None, int, int]] = [
            ("cycle", Job("library", b, True), args.tokens, 0)
        ]
        if args.pgqueuer_python:
            peer: list[tuple[str, Job | None, int, int]] = [("cycle", None, args.tokens, 0)]
            cycle = cycle + peer if repetition % 2 == 0 else peer + cycle
        history = [("history", Job(path, b, False), args.tokens, args.history) for path in paths]
        return plan + cycle + history

    runs: list[Run] = []
    with (
        scratch_database(args.database_url) as url,
        sibling_database(url, "glisk_bench_pgqueuer") as peer_url,
        psycopg.connect(conninfo(url), autocommit=True) as conn,
    ):
        migrate_with_author(url, "bench")
        version = conn.execute("SHOW server_version").fetchone()
        print(
            f"# {machine()}"
            f" · PostgreSQL {version[0] if version else '?'}"
            f" · load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {args.workers} workers · "
            f"{args.repetitions} repetitions, medians · history {args.history} rows",
            flush=True,
        )
        pool = WorkerPool(args.workers, url)
        try:
            for path in ("library", "raw"):  # warm-up: statement caches, prepared statements
                measure(pool, conn, "warm-up", Job(path, b, False), 1_000, 0)
            measure(pool, conn, "warm-up", Job("library", b, True), 1_000, 0)
            for repetition in range(args.repetitions):
                for scenario, job, tokens, history in schedule(repetition):
                    if job is None:
                        runs.append(measure_pgqueuer(args.pgqueuer_python, peer_url, tokens))
                    else:
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
