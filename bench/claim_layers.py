"""Client CPU per claim, layer by layer: where the library spends what raw SQL does not.

One process drains a freshly seeded queue at B = 10 through each of these, in turn, repeated;
each sends the library's own claim statement (glisk_cli/repositories/token_sql.py):

- raw psycopg, one transaction per claim;
- SQLAlchemy Core: `engine.begin()` + `exec_driver_sql` (no pool pre-ping, as glisk's engine);
- a Session from glisk's session factory, the statement on its connection;
- the Unit of Work: `uow.tokens.claim(...)`, i.e. the library (which also builds the records).

It reports the medians of this process's CPU time per claim (not wall time, so the server's
share and the machine's load stay out of it).

    uv run python bench/claim_layers.py [--tokens 2000] [--repetitions 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any, LiteralString, cast

import psycopg
from claim import LEASE, STAGE, seed
from scratch import conninfo, migrate_with_author, scratch_database

from glisk_cli.db import Database
from glisk_cli.logging import configure_logging
from glisk_cli.pipeline import stage_named
from glisk_cli.repositories.array_literal import array_literal
from glisk_cli.repositories.token_sql import claim_sql
from glisk_cli.uow import create_uow_factory

BATCH = 10
Drain = Callable[[], int]  # claims until one comes back empty; returns how many claims it made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="use this server (a scratch database on it)")
    parser.add_argument("--tokens", type=int, default=2_000)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    configure_logging("WARNING")  # glisk's default: no INFO line per transaction

    with scratch_database(args.database_url) as url:
        migrate_with_author(url, "bench")
        sql = cast(LiteralString, claim_sql(stage_named(STAGE), BATCH, BATCH))
        database = Database(url, pool_size=1)
        uow_factory = create_uow_factory(database)
        raw = psycopg.connect(conninfo(url))

        def params() -> dict[str, Any]:
            return {
                "limit": BATCH,
                "worker": "w",
                "lease": LEASE,
                "max_attempts": 5,
                "lease_ids": array_literal([uuid.uuid4()]),
            }

        def drain_raw() -> int:
            def claim() -> list[Any]:
                rows = raw.execute(sql, params()).fetchall()
                raw.commit()
                return rows

            return _drain(claim)

        def drain_core() -> int:
            def claim() -> list[Any]:
                with database.engine.begin() as connection:
                    return list(connection.exec_driver_sql(sql, params()))

            return _drain(claim)

        def drain_session() -> int:
            def claim() -> list[Any]:
                with database.sessions() as session, session.begin():
                    return list(session.connection().exec_driver_sql(sql, params()))

            return _drain(claim)

        def drain_library() -> int:
            def claim() -> list[Any]:
                with uow_factory() as uow:
                    return uow.tokens.claim(STAGE, BATCH, "w", LEASE)

            return _drain(claim)

        layers: dict[str, Drain] = {
            "raw psycopg": drain_raw,
            "SQLAlchemy Core (engine.begin)": drain_core,
            "Session, statement on its connection": drain_session,
            "Unit of Work: uow.tokens.claim (the library)": drain_library,
        }
        samples: dict[str, list[float]] = {name: [] for name in layers}
        with psycopg.connect(conninfo(url), autocommit=True) as admin:
            for _ in range(args.repetitions):
                for name, drain in layers.items():
                    seed(admin, args.tokens, 0)
                    started = time.process_time()
                    claims = drain()
                    samples[name].append((time.process_time() - started) / claims)
        raw.close()
        database.dispose()

    print(
        f"# {platform.node()} · Python {platform.python_version()} · "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {args.tokens} tokens, B = "
        f"{BATCH}, {args.repetitions} repetitions (medians)"
    )
    baseline = statistics.median(samples["raw psycopg"])
    print(f"{'claim through':<48} {'CPU per claim':>14} {'x raw':>7}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:<48} {median * 1000:>11.2f} ms {median / baseline:>7.2f}")


def _drain(claim: Callable[[], list[Any]]) -> int:
    claims = 0
    while True:
        claims += 1
        if not claim():
            return claims


if __name__ == "__main__":
    main()
