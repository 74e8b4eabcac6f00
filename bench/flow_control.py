"""What a stage's flow control costs its claims: worker processes draining the generation queue
with the library's full cycle (claim B = 10, commit, advance), with the stage unlimited, under
a concurrency limit that never binds, and under a rate limit that never binds — so that what is
measured is the controls' own cost (claims of a limited stage take turns to count the jobs
running and spend the bucket), not the limit doing its job.

    uv run python bench/flow_control.py
    uv run python bench/flow_control.py --quick
    uv run python bench/flow_control.py --database-url postgresql+psycopg://user:pw@host/db

Each repetition runs the three settings in a rotated order; medians are reported, with each
setting's ratio to the unlimited stage in the same run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys

import psycopg
from claim import GOAL_BATCH, Job, Run, WorkerPool, measure
from scratch import conninfo, migrate_with_author, scratch_database

from glisk_cli.logging import configure_logging

SETTINGS = {
    "unlimited": "concurrency = NULL, rate_jobs = NULL, rate_seconds = NULL",
    "concurrency": "concurrency = 1000000, rate_jobs = NULL, rate_seconds = NULL",
    "rate": "concurrency = NULL, rate_jobs = 100000, rate_seconds = 1, burst = 100000, "
    "bucket = 100000",
}


def control(conn: psycopg.Connection, setting: str) -> None:
    conn.execute("INSERT INTO stage_controls (stage) VALUES ('generation') ON CONFLICT DO NOTHING")
    conn.execute(f"UPDATE stage_controls SET {SETTINGS[setting]} WHERE stage = 'generation'")  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="use this server (a scratch database on it)")
    parser.add_argument("--quick", action="store_true", help="small drains, one repetition")
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.repetitions = 4_000, 1
    configure_logging("WARNING")
    runs: dict[str, list[Run]] = {setting: [] for setting in SETTINGS}
    with scratch_database(args.database_url) as url:
        migrate_with_author(url, "bench")
        pool = WorkerPool(args.workers, url)
        try:
            with psycopg.connect(conninfo(url), autocommit=True) as conn:
                order = list(SETTINGS)
                for repetition in range(args.repetitions):
                    print(f"# repetition {repetition + 1}", file=sys.stderr)
                    shift = repetition % len(order)
                    for setting in order[shift:] + order[:shift]:
                        control(conn, setting)
                        job = Job("library", GOAL_BATCH, cycle=True)
                        run = measure(pool, conn, setting, job, args.tokens, 0)
                        runs[setting].append(run)
        finally:
            pool.close()
    print(f"# {platform.node()}, {args.workers} workers, B={GOAL_BATCH}, claim + advance")
    base = statistics.median(r.rate for r in runs["unlimited"])
    for setting, done in runs.items():
        rates = [r.rate for r in done]
        median = statistics.median(rates)
        print(
            f"{setting:<12} {median:>8.0f} tokens/s  ({min(rates):.0f}-{max(rates):.0f})  "
            f"{median / base:.2f} of unlimited"
        )


if __name__ == "__main__":
    main()
