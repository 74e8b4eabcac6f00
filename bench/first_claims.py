"""The first claims after a big drop: N tokens inserted by plain SQL into a tokens_s0 that was
never analysed (autovacuum off for it, so that nothing analyses it during the run), then claims
of B through the library, one Unit of Work each, as a runner claims.

Each round loads a fresh database (the same SQL), and the claims are timed
around `uow.tokens.claim` (the call: the statement's round trip and the records) and around the
whole Unit of Work (with the commit). Then the same after `ANALYZE tokens_s0`, as autovacuum
eventually has it. Medians over every claim of every round.

    uv run python bench/first_claims.py [--tokens 500000] [--batch 100] [--claims 20] [--rounds 3]

With --database-url the script creates scratch databases on that server and drops them; without,
it starts its own embedded server (no fsync) in a temporary directory.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg
from scratch import conninfo, machine, migrate_with_author, scratch_database, scratch_server

from glisk_cli.db import Database
from glisk_cli.logging import configure_logging
from glisk_cli.uow import create_uow_factory

_LOAD = """
INSERT INTO tokens_s0 (token_id, author_id, minter_address, mint_timestamp)
SELECT n, (SELECT id FROM authors LIMIT 1), '0x00000000000000000000000000000000000000bb',
       timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second'
FROM generate_series(1, %(tokens)s) AS n
"""


def load(url: str, tokens: int, *, analysed: bool) -> None:
    """`tokens` detected tokens by plain SQL into a new database's tokens_s0, which autovacuum
    leaves alone; then analysed, or not."""
    migrate_with_author(url, "first claims")
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute("ALTER TABLE tokens_s0 SET (autovacuum_enabled = false)")
        conn.execute(_LOAD, {"tokens": tokens})
        if analysed:
            conn.execute("ANALYZE tokens_s0")


def claims(database: Database, batch: int, count: int) -> tuple[list[float], list[float]]:
    """Seconds of `count` claims of `batch`: the call, and the whole Unit of Work."""
    uow_factory = create_uow_factory(database)
    calls, units = [], []
    for _ in range(count):
        started = time.perf_counter()
        with uow_factory() as uow:
            called = time.perf_counter()
            claimed = uow.tokens.claim("generation", batch, "bench")
            calls.append(time.perf_counter() - called)
        units.append(time.perf_counter() - started)
        assert len(claimed) == batch
    return calls, units


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="use this server (a scratch database on it)")
    parser.add_argument("--tokens", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--claims", type=int, default=20, help="claims timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    configure_logging("WARNING")  # glisk's default: no line per transaction

    measured: dict[str, tuple[list[float], list[float]]] = {}
    with ExitStack() as stack:
        server = args.database_url or stack.enter_context(scratch_server()).url
        for _ in range(args.rounds):
            for state in ("never analysed", "analysed"):
                with scratch_database(server) as url:
                    load(url, args.tokens, analysed=state == "analysed")
                    database = Database(url, pool_size=1)
                    try:
                        calls, units = claims(database, args.batch, args.claims)
                    finally:
                        database.dispose()
                kept = measured.setdefault(state, ([], []))
                kept[0].extend(calls)
                kept[1].extend(units)

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(f"# {machine()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · commit {commit}")
    print(
        f"# {args.tokens} tokens by plain SQL, then {args.claims} claims of {args.batch}, "
        f"{args.rounds} rounds (medians, ms)"
    )
    for state, (calls, units) in measured.items():
        print(
            f"{state:>15}: claim {statistics.median(calls) * 1000:7.1f}   "
            f"unit of work {statistics.median(units) * 1000:7.1f}   "
            f"first {calls[0] * 1000:7.1f}   max {max(calls) * 1000:7.1f}"
        )


if __name__ == "__main__":
    main()
