"""What the claim statement itself costs: variants of it sent by plain psycopg, side by side.

4 worker processes drain a freshly seeded queue of 20,000 detected tokens at B = 10, one
transaction per claim, each variant in turn (interleaved, 3 repetitions, medians):

- minimal: the floor of bench/claim.py (`WITH c AS (… FOR UPDATE SKIP LOCKED) UPDATE …`);
- library: the library's own claim statement (glisk_cli/repositories/token_sql.py);
- sorted expired: the library's, with its probe for expired leases sorted by mint (as before
  the sort was dropped);
- third probe: the library's, with one more empty index probe in front of the free tokens, as
  a third source (retry delays in a column of their own) would add;
- library, glisk's options: the library's, on connections started with the options glisk's
  engine sets (TimeZone, lock_timeout, statement_timeout);
- library, LIMIT a parameter: the library's as it was sent before its LIMITs were written in,
  which made PostgreSQL plan every claim anew (the minimal claim's LIMIT is a parameter too).

    uv run python bench/claim_statements.py [--database-url URL] [--tokens 20000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
import uuid
from multiprocessing.synchronize import Barrier
from typing import Any, LiteralString, cast

import psycopg
from claim import LEASE, LIBRARY_CLAIM, RAW_CLAIM, one_lease, seed
from scratch import conninfo, machine, migrate_with_author, scratch_database

BATCH = 10
WORKERS = 4
GLISK_OPTIONS = "-c TimeZone=UTC -c lock_timeout=5000 -c statement_timeout=30000"
_EXPIRED = "AND lease_expires_at < statement_timestamp()\n        LIMIT"
_FREE = "    free AS ("
VARIANTS: dict[str, tuple[str, str]] = {  # name: (statement, connection options)
    "minimal": (RAW_CLAIM, ""),
    "library": (LIBRARY_CLAIM, ""),
    "sorted expired": (
        LIBRARY_CLAIM.replace(_EXPIRED, _EXPIRED.replace("LIMIT", "ORDER BY mint_timestamp LIMIT")),
        "",
    ),
    "third probe": (
        LIBRARY_CLAIM.replace(
            _FREE,
            "    third AS (\n        SELECT id FROM tokens_s0 WHERE status = 'detected'"
            " AND lease_expires_at < statement_timestamp() AND lease_id IS NULL\n"
            f"        LIMIT {BATCH} FOR UPDATE SKIP LOCKED\n    ),\n" + _FREE,
        ).replace(
            "SELECT id FROM expired\n",
            "SELECT id FROM expired\n        UNION ALL\n        SELECT id FROM third\n",
        ),
        "",
    ),
    "library, glisk's options": (LIBRARY_CLAIM, GLISK_OPTIONS),
    # The library's claim as it was sent until 2026-11-30: the LIMIT a parameter, so PostgreSQL
    # planned every claim anew (token_sql.py).
    "library, LIMIT a parameter": (LIBRARY_CLAIM.replace("LIMIT 10", "LIMIT %(limit)s"), ""),
}


def drain(url: str, sql: str, options: str, barrier: Barrier, results: mp.Queue) -> None:
    conn = (
        psycopg.connect(conninfo(url), options=options)
        if options
        else psycopg.connect(conninfo(url))
    )
    params: dict[str, Any] = {"limit": BATCH, "worker": "w", "lease": LEASE, "max_attempts": 5}
    statement = cast(LiteralString, sql)  # built from constants
    claimed = 0
    barrier.wait()
    started = time.monotonic()
    while True:
        params["lease_id"] = uuid.uuid4()
        params["lease_ids"] = one_lease()
        rows = conn.execute(statement, params).fetchall()
        conn.commit()
        if not rows:
            break
        claimed += len(rows)
    results.put((started, time.monotonic(), claimed))


def measure(url: str, admin: psycopg.Connection, name: str, tokens: int) -> float:
    seed(admin, tokens, 0)
    context = mp.get_context("fork")
    barrier, results = context.Barrier(WORKERS), context.Queue()
    sql, options = VARIANTS[name]
    processes = [
        context.Process(target=drain, args=(url, sql, options, barrier, results))
        for _ in range(WORKERS)
    ]
    for process in processes:
        process.start()
    done = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    if sum(count for _, _, count in done) != tokens:
        raise RuntimeError(f"{name}: claimed {sum(c for _, _, c in done)} of {tokens}")
    return tokens / (max(end for _, end, _ in done) - min(start for start, _, _ in done))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="use this server (a scratch database on it)")
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    for changed in ("sorted expired", "third probe"):  # a replace() that missed changes nothing
        if VARIANTS[changed][0] == LIBRARY_CLAIM:
            raise RuntimeError(f"variant {changed!r} is the library's statement unchanged")
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with scratch_database(args.database_url) as url:
        migrate_with_author(url, "bench")
        with psycopg.connect(conninfo(url), autocommit=True) as admin:
            for repetition in range(args.repetitions):
                names = list(VARIANTS) if repetition % 2 == 0 else list(VARIANTS)[::-1]
                for name in names:
                    rates[name].append(measure(url, admin, name, args.tokens))
    print(
        f"# {machine()} · "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {WORKERS} workers, B = "
        f"{BATCH}, {args.tokens} tokens, {args.repetitions} repetitions (medians)"
    )
    floor = statistics.median(rates["minimal"])
    print(f"{'statement':<26} {'tokens/s':>9} {'min-max':>13} {'x minimal':>10}")
    for name, values in rates.items():
        median = statistics.median(values)
        spread = f"{min(values):.0f}-{max(values):.0f}"
        print(f"{name:<26} {median:>9.0f} {spread:>13} {median / floor:>10.2f}")


if __name__ == "__main__":
    main()
