"""pgqueuer's drain on a given database: the peer the library cycle is measured against.

Run with the Python of a throwaway environment that has pgqueuer and asyncpg (never a glisk
dependency); bench/claim.py does that for you with --pgqueuer-python:

    uv venv /tmp/pgq && uv pip install --python /tmp/pgq/bin/python pgqueuer asyncpg
    /tmp/pgq/bin/python bench/peers/pgqueuer_drain.py --dsn postgresql://… --jobs 20000

It installs pgqueuer's schema (once), enqueues --jobs jobs, and drains them the way pgqueuer's
own benchmark does (tools/benchmark.py, strategy "drain"): --consumers PgQueuer instances, each
on its own asyncpg connection, batch --batch, an entrypoint that only counts, every job
dequeued and acknowledged. Prints one JSON line: jobs, seconds, jobs per second, and the CPU
seconds (user, system) this process spent draining.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode


async def drain(dsn: str, jobs: int, consumers: int, batch: int) -> dict[str, float]:
    admin = Queries(AsyncpgDriver(await asyncpg.connect(dsn=dsn)))
    if not await admin.has_table("pgqueuer"):
        await admin.install()
    await admin.clear_queue()
    await admin.clear_statistics_log()
    await admin.enqueue(["fetch"] * jobs, [b""] * jobs, [0] * jobs)
    done = 0

    queues = []
    for _ in range(consumers):
        pgq = PgQueuer(AsyncpgDriver(await asyncpg.connect(dsn=dsn)))

        @pgq.entrypoint("fetch")
        async def fetch(job: Job) -> None:
            nonlocal done
            done += 1

        queues.append(pgq)
    before, started = os.times(), time.perf_counter()
    await asyncio.gather(
        *(pgq.run(batch_size=batch, mode=QueueExecutionMode.drain) for pgq in queues)
    )
    seconds, after = time.perf_counter() - started, os.times()
    left = sum(size.count for size in await admin.queue_size())
    return {
        "jobs": done,
        "left": left,
        "seconds": seconds,
        "rate": done / seconds,
        "user": after.user - before.user,
        "system": after.system - before.system,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--consumers", type=int, default=5)
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(drain(args.dsn, args.jobs, args.consumers, args.batch))))


if __name__ == "__main__":
    main()
