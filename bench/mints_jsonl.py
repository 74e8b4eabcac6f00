"""`glisk mints record --jsonl`: wall time of the whole process recording N new mints from a
file (goal: 100,000 in at most 10 s), and of replaying the same file (every line recorded
already, nothing written), beside `glisk dev seed` of N tokens (no parsing, no events: the
server makes the rows) as the floor of writing that many tokens. Runs alternate between the
three, on tables emptied before each one; medians.

    uv run python bench/mints_jsonl.py
    uv run python bench/mints_jsonl.py --mints 100000 --runs 5 --database-url postgresql+psycopg://…
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from scratch import (
    conninfo,
    machine,
    migrate_with_author,
    process_env,
    scratch_database,
    timed,
)

GLISK = str(Path(sys.executable).with_name("glisk"))
AUTHOR = "0x00000000000000000000000000000000000000aa"  # migrate_with_author's


def write_mints(path: Path, count: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with path.open("w") as out:
        for n in range(1, count + 1):
            mint = {
                "tx_hash": "0x" + f"{n:064x}",
                "log_index": n % 4,
                "block_number": 19_000_000 + n // 4,
                "block_timestamp": (start + timedelta(seconds=n)).isoformat(),
                "token_id": n,
                "author": AUTHOR,
                "minter": "0x" + f"{n:040x}",
            }
            out.write(json.dumps(mint) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="use this server (a scratch database on it)")
    parser.add_argument("--mints", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, scratch_database(args.database_url) as url:
        source = Path(scratch) / "mints.jsonl"
        write_mints(source, args.mints)
        migrate_with_author(url, "bench")
        env = process_env() | {"DATABASE_URL": url}
        record = [GLISK, "mints", "record", "--jsonl", str(source), "--json"]
        seed = [GLISK, "dev", "seed", "--authors", "1", "--tokens", str(args.mints), "--yes"]

        def emptied() -> None:
            with psycopg.connect(conninfo(url), autocommit=True) as conn:
                conn.execute("TRUNCATE mint_events, tokens_s0 CASCADE")

        load_before = os.getloadavg()[0]
        spent: dict[str, list[float]] = {"record": [], "replay": [], "dev seed": []}
        for _ in range(args.runs):
            emptied()
            spent["record"].append(timed(record, env))
            spent["replay"].append(timed(record, env))
            emptied()
            spent["dev seed"].append(timed(seed, env))
    floor = statistics.median(spent["dev seed"])
    print(
        f"# {machine()}, {args.mints} mints, {args.runs} runs each, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    for name, times in spent.items():
        median = statistics.median(times)
        print(
            f"{name:<10} median {median:6.2f} s  ({args.mints / median:8.0f} /s)  "
            f"vs dev seed {median / floor:5.2f}   runs: {', '.join(f'{t:.2f}' for t in times)}"
        )


if __name__ == "__main__":
    main()
