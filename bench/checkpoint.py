"""What one checkpoint costs a job, on each of its three paths: the library
(`uow.tokens.checkpoint`, in the worker's own process), the runner's socket (what a job of
`glisk work` uses: `glisk_cli.checkpoint.record`, served by `work/checkpoints.py`), and the
command (`glisk tokens checkpoint`, a process per checkpoint). Each is timed from the call to
the checkpoint being durable (its commit), on one claimed job of one token; medians.

    uv run python bench/checkpoint.py
    uv run python bench/checkpoint.py --database-url postgresql+psycopg://user:pw@host/db
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from scratch import migrate_with_author, scratch_database

from glisk_cli.checkpoint import LEASE_VARIABLE, SOCKET_VARIABLE, record
from glisk_cli.db import Database
from glisk_cli.logging import configure_logging
from glisk_cli.pipeline import STAGES, StageName
from glisk_cli.uow import create_uow_factory
from glisk_cli.work.checkpoints import CheckpointServer

GLISK = Path(sys.executable).with_name("glisk")
DOCUMENT = {"external_job_id": "prediction-0123456789", "attempt": 1}


def timed(call: Callable[[], object], times: int) -> list[float]:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        spent.append(time.perf_counter() - started)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="use this server (a scratch database on it)")
    parser.add_argument("--times", type=int, default=300)
    args = parser.parse_args()
    configure_logging("WARNING")
    with scratch_database(args.database_url) as url:
        migrate_with_author(url, "bench")
        database = Database(url, pool_size=2)
        uow_factory = create_uow_factory(database)
        with uow_factory() as uow:
            uow.transaction.rows(
                "INSERT INTO tokens_s0 (token_id, author_id, minter_address, mint_timestamp) "
                "SELECT 1, id, '0x00000000000000000000000000000000000000bb', now() "
                "FROM authors LIMIT 1 RETURNING token_id",
                {},
            )
        with uow_factory() as uow:
            tokens = uow.tokens.claim("generation", 1, "bench", timedelta(hours=1))

        def library() -> None:
            with uow_factory() as uow:
                uow.tokens.checkpoint(tokens, DOCUMENT)

        server = CheckpointServer(uow_factory, STAGES[StageName.GENERATION])
        os.environ[SOCKET_VARIABLE] = server.path
        os.environ[LEASE_VARIABLE] = str(tokens[0].lease_id)

        def command() -> None:
            lease_id = str(tokens[0].lease_id)
            document = '{"external_job_id": "prediction-0123456789"}'
            subprocess.run(
                [str(GLISK), "tokens", "checkpoint", "--lease-id", lease_id, "1", document],
                env={**os.environ, "DATABASE_URL": url},
                check=True,
                capture_output=True,
            )

        results = {
            "library (uow.tokens.checkpoint)": timed(library, args.times),
            "glisk work's socket (checkpoint.record)": timed(lambda: record(DOCUMENT), args.times),
            "command (glisk tokens checkpoint)": timed(command, max(10, args.times // 15)),
        }
        server.close()
        database.dispose()
    print(f"# {platform.node()}, Python {platform.python_version()}, one token's checkpoint")
    for path, spent in results.items():
        print(
            f"{path:<42} median {statistics.median(spent) * 1000:7.2f} ms   "
            f"p90 {statistics.quantiles(spent, n=10)[-1] * 1000:7.2f} ms   ({len(spent)} runs)"
        )


if __name__ == "__main__":
    main()
