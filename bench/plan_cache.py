"""Does PostgreSQL plan the workers' statements once, or on every execution?

psycopg prepares a statement once it has run 5 times; PostgreSQL then makes 5 custom plans and
keeps its generic plan from then on, unless the generic plan looks costlier. This script runs
each of the workers' statements 30 times on one connection, at a few batch sizes, and prints
`pg_prepared_statements`' count of generic and custom plans for each: a statement whose custom
plans keep counting up is planned on every execution.

- claim: the library's (its LIMIT written in), the same with its LIMIT a parameter (as before
  b54ce4f), and the minimal claim of bench/claim.py;
- renew, advance and release of the claimed batch, through the library.

    uv run python bench/plan_cache.py [--database-url URL]
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any, LiteralString, cast

import psycopg
from claim import LEASE, LIBRARY_CLAIM, RAW_CLAIM, STAGE, one_lease, seed
from scratch import conninfo, migrate_with_author, scratch_database

from glisk_cli.db import Database
from glisk_cli.uow import create_uow_factory

RUNS = 30
QUERY = "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
Plans = list[tuple[str, int, int]]  # pg_prepared_statements: statement, generic, custom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="use this server (a scratch database on it)")
    args = parser.parse_args()
    with scratch_database(args.database_url) as url:
        migrate_with_author(url, "bench")
        with psycopg.connect(conninfo(url), autocommit=True) as admin:
            seed(admin, 20_000, 0)
        print(f"{'statement':<44} {'generic':>8} {'custom':>8}")
        for name, sql in (
            ("claim, library (LIMIT written in), B=10", LIBRARY_CLAIM),
            (
                "claim, library, LIMIT a parameter, B=10",
                LIBRARY_CLAIM.replace("LIMIT 10", "LIMIT %(limit)s"),
            ),
            ("claim, minimal (bench/claim.py), B=10", RAW_CLAIM),
        ):
            _report(name, _raw_plans(url, cast(LiteralString, sql)), "FOR UPDATE SKIP LOCKED")
        for batch in (2, 8, 10):
            plans = _library_plans(url, batch)
            for name, marker in (
                ("renew", "SET lease_expires_at = statement_timestamp()"),
                ("advance (half the batch)", "moves.to_status"),
                ("release (the other half)", "held.queued"),
            ):
                _report(f"{name}, B={batch}", plans, marker)


def _raw_plans(url: str, sql: LiteralString) -> Plans:
    """A claim statement run RUNS times by plain psycopg, then its connection's plans."""
    params: dict[str, Any] = {"limit": 10, "worker": "w", "lease": LEASE, "max_attempts": 5}
    with psycopg.connect(conninfo(url)) as conn:
        for _ in range(RUNS):
            conn.execute(
                sql, {**params, "lease_id": uuid.uuid4(), "lease_ids": one_lease()}
            ).fetchall()
            conn.commit()
        return conn.execute(QUERY).fetchall()


def _library_plans(url: str, batch: int) -> Plans:
    """Claim, renew, advance and release batches of `batch` RUNS times through the library (a
    pool of one, so one connection), then that connection's plans."""
    database = Database(url, pool_size=1)
    uow_factory = create_uow_factory(database)
    try:
        for _ in range(RUNS):
            with uow_factory() as uow:
                tokens = uow.tokens.claim(STAGE, batch, "w", LEASE)
            with uow_factory() as uow:
                tokens = uow.tokens.renew(tokens, LEASE)
            half = len(tokens) // 2
            with uow_factory() as uow:
                uow.tokens.advance([(t, {"image_path": "x.png"}) for t in tokens[:half]])
            with uow_factory() as uow:
                uow.tokens.release(tokens[half:])
        with uow_factory() as uow:
            return [(row[0], row[1], row[2]) for row in uow.transaction.rows(QUERY, {})]
    finally:
        database.dispose()


def _report(name: str, plans: Plans, marker: str) -> None:
    """The generic and custom plans of the one statement in `plans` that contains `marker`."""
    [(generic, custom)] = [(g, c) for statement, g, c in plans if marker in statement]
    print(f"{name:<44} {generic:>8} {custom:>8}")


if __name__ == "__main__":
    main()
