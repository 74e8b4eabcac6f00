"""Schema and big-table timings: `glisk db upgrade` from empty to head and `glisk db verify`
(whole processes, start-up included), `glisk dev seed --tokens 1000000`, and `tokens stats` on
the resulting million-token table (library call and whole process).

    uv run python bench/schema_and_stats.py [--runs 5] [--tokens 1000000]

Everything runs against a throwaway embedded server in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import psycopg
from scratch import process_env, scratch_server, timed
from sqlalchemy.engine import make_url

GLISK = str(Path(sys.executable).with_name("glisk"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    args = parser.parse_args()
    env = process_env()

    with scratch_server() as server:
        base = make_url(server.url)
        conninfo = base.set(drivername="postgresql").render_as_string(hide_password=False)
        upgrades, verifies = [], []
        for run in range(args.runs + 1):  # the first run warms bytecode caches; not counted
            name = f"bench_schema_{run}"
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
            run_env = {**env, "DATABASE_URL": base.set(database=name).render_as_string(False)}
            upgrade = timed([GLISK, "db", "upgrade"], run_env)
            verify = timed([GLISK, "db", "verify"], run_env)
            if run:
                upgrades.append(upgrade)
                verifies.append(verify)

        big_env = {
            **env,
            "DATABASE_URL": base.set(database="bench_schema_1").render_as_string(False),
        }
        seed_s = timed([GLISK, "dev", "seed", "--tokens", str(args.tokens), "--yes"], big_env)
        with psycopg.connect(
            base.set(database="bench_schema_1", drivername="postgresql").render_as_string(False),
            autocommit=True,
        ) as conn:
            # A realistic spread: most tokens finished, some in every other state.
            conn.execute("UPDATE tokens_s0 SET status = 'revealed' WHERE token_id % 10 < 7")
            conn.execute(
                "UPDATE tokens_s0 SET status = 'failed', error_data = "
                '\'{"reason": "max_attempts"}\' WHERE token_id % 100 = 71'
            )
            conn.execute(
                "UPDATE tokens_s0 SET status = 'generating', claimed_by = 'w', "
                "lease_expires_at = now() + interval '5 minutes' "
                "WHERE token_id % 1000 = 72"
            )
            conn.execute("VACUUM ANALYZE tokens_s0")
            sizes = conn.execute(
                "SELECT relname, pg_size_pretty(pg_relation_size(oid)) FROM pg_class "
                "WHERE relname IN ('tokens_s0', 'ix_tokens_s0_status', "
                "'ix_tokens_s0_status_mint_timestamp') ORDER BY relname"
            ).fetchall()

        from glisk_cli.db import setup_db_session
        from glisk_cli.logging import configure_logging
        from glisk_cli.uow import create_uow_factory

        configure_logging("WARNING")  # glisk's default: no INFO line per transaction
        uow_factory = create_uow_factory(setup_db_session(big_env["DATABASE_URL"], pool_size=1))
        library = []
        for _ in range(args.runs * 2 + 1):
            started = time.perf_counter()
            with uow_factory() as uow:
                report = uow.tokens.stats()
            library.append(time.perf_counter() - started)
        process = [timed([GLISK, "tokens", "stats", "--json"], big_env) for _ in range(args.runs)]
        floor = [
            timed([sys.executable, "-c", "import sqlalchemy.orm, psycopg"], env)
            for _ in range(args.runs)
        ]

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.0f} ms"

    print(f"# {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {args.runs} runs (medians)")
    print(f"glisk db upgrade, empty → head (process):   {ms(upgrades)}")
    print(f"glisk db verify at head (process):          {ms(verifies)}")
    print(f"glisk dev seed --tokens {args.tokens}:       {seed_s:.1f} s")
    print(f"tokens stats on {report.total} tokens, library call: {ms(library[1:])}")
    print(f"glisk tokens stats --json (process):        {ms(process)}")
    print(f"floor: import sqlalchemy.orm, psycopg:      {ms(floor)}")
    print("sizes: " + ", ".join(f"{name} {size}" for name, size in sizes))


if __name__ == "__main__":
    main()
