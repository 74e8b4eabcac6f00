"""CLI latency: median wall time of glisk commands against the import floor, in one run.

The floor is `python -c "import sqlalchemy.orm, psycopg"`: what any command that talks to the
database must pay before doing anything. Commands are run round-robin (floor, then each command,
repeated) so that the machine's noise hits all of them alike; medians are reported.

    uv run python bench/cli_latency.py [--runs 15] [--command "db status --json"] ...
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
FLOOR = [sys.executable, "-c", "import sqlalchemy.orm, psycopg"]
DEFAULT_COMMANDS = ["--help", "db status --json"]


def time_once(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--command", action="append", help="glisk arguments, quoted as one string")
    args = parser.parse_args()
    commands = args.command or DEFAULT_COMMANDS
    env = dict(os.environ)
    # Measure what users get: bytecode cached after the warm-up run (some machines disable it).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    glisk = str(VENV_BIN / "glisk")
    targets = {"floor: import sqlalchemy.orm, psycopg": FLOOR}
    targets |= {f"glisk {command}": [glisk, *command.split()] for command in commands}

    for argv in targets.values():  # warm-up: bytecode caches, embedded server start
        time_once(argv, env)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(args.runs):
        for name, argv in targets.items():
            samples[name].append(time_once(argv, env))

    floor = statistics.median(samples["floor: import sqlalchemy.orm, psycopg"])
    print(f"# {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {args.runs} runs each")
    print(f"{'command':<48} {'median':>9} {'min':>9} {'x floor':>8}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:<48} {median * 1000:>7.0f}ms {min(values) * 1000:>7.0f}ms "
              f"{median / floor:>8.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
