"""The in-process runner against pgqueuer's consumer: `glisk_cli.work.work` draining N no-op
tokens (default 20,000) in one process, against pgqueuer's `PgQueuer` draining N no-op jobs in
one process, on the same PostgreSQL, runs alternating.

- glisk: `work("generation", handler, concurrency=8, drain=True)` with a handler that returns
  `{"image_path": "/x.png"}` at once, on a freshly seeded table of N detected tokens. Every
  token is claimed under a fenced lease, gets its history row (running, then succeeded) and is
  advanced under its lease; the run checks that all N moved and all N rows say succeeded.
- pgqueuer: one consumer (`bench/peers/pgqueuer_drain.py --consumers 1`), batch 10, drain mode,
  an entrypoint that only counts, in a throwaway environment of its own (pgqueuer is no glisk
  dependency):

      uv venv /tmp/pgq && uv pip install --python /tmp/pgq/bin/python pgqueuer asyncpg
      uv run python bench/inprocess.py --pgqueuer-python /tmp/pgq/bin/python

Each side runs in a process of its own, timed from inside from its first claim to the drain's
end (glisk: the runner's summary; pgqueuer: around its consumers' run), with the CPU seconds
(user and system) its process spent over the same span: the client's cost per token. Goal:
glisk's tokens/s at least 1.0 times pgqueuer's jobs/s (medians; stretch 1.5).

With --database-url the script works in scratch databases on that server; without, on an
embedded server started for it. `--profile FILE` samples one extra glisk run with py-spy
(`--py-spy` names its binary) into FILE (a flame graph, or raw folded stacks for .txt).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from scratch import (
    conninfo,
    machine,
    migrate_with_author,
    process_env,
    scratch_database,
    sibling_database,
)
from work import seed  # N detected tokens and no history, as bench/work.py starts each run

PEER = Path(__file__).with_name("peers") / "pgqueuer_drain.py"
CONCURRENCY = 8
_TICK = os.sysconf("SC_CLK_TCK")


class ServerCPU:
    """CPU seconds the PostgreSQL server has spent so far — its postmaster, every backend
    still running, and every one that exited (in the postmaster's children's times) — when it
    runs on this machine and its files can be read; else None."""

    def __init__(self, url: str) -> None:
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
        try:
            pid_file = Path(row[0] if row else "") / "postmaster.pid"
            self._postmaster: int | None = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            self._postmaster = None

    def seconds(self) -> float | None:
        if self._postmaster is None:
            return None
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue  # gone meanwhile
            pid, parent = int(stat.parent.name), int(fields[1])
            if pid == self._postmaster:
                ticks += sum(int(n) for n in fields[11:15])  # utime stime cutime cstime
            elif parent == self._postmaster:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / _TICK


def check(url: str, tokens: int) -> None:
    """Every token moved on, and its attempt's history row says it succeeded."""
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        row = conn.execute(
            """
            SELECT (SELECT count(*) FROM tokens_s0 WHERE status = 'uploading'),
                   (SELECT count(*) FROM image_generation_jobs WHERE status = 'succeeded'),
                   (SELECT count(*) FROM image_generation_jobs)
            """
        ).fetchone()
    if row != (tokens, tokens, tokens):
        raise RuntimeError(f"glisk: (uploading, succeeded rows, rows) = {row}, not {tokens}")


def child() -> None:
    """The glisk side, in this process: drain the stage and print what it cost."""
    from glisk_cli.work import work

    def generate(token: object) -> dict[str, str]:
        return {"image_path": "/x.png"}

    before = os.times()
    summary = work("generation", generate, concurrency=CONCURRENCY, drain=True)
    after = os.times()
    seconds = float(summary["seconds"])  # type: ignore[arg-type]
    done = int(summary["succeeded"])  # type: ignore[call-overload]
    print(
        json.dumps(
            {
                "jobs": done,
                "seconds": seconds,
                "rate": done / seconds,
                "user": after.user - before.user,
                "system": after.system - before.system,
            }
        )
    )


def measure_glisk(
    url: str,
    server: ServerCPU,
    tokens: int,
    profile: tuple[str, str] | None = None,
    source: str | None = None,
) -> dict:
    """glisk's drain of `tokens`; with `source`, of the glisk package in that directory."""
    seed(url, tokens)
    env = {**process_env(), "DATABASE_URL": url}
    if source is not None:
        env["PYTHONPATH"] = source
    argv = [sys.executable, __file__, "--child"]
    if profile is not None:
        spy, output = profile
        fmt = "raw" if output.endswith(".txt") else "flamegraph"
        argv = [spy, "record", "--gil", "--rate", "400", "--format", fmt, "-o", output, "--", *argv]
    result = _run(argv, env, server)
    check(url, tokens)
    return _announce("glisk" if source is None else "baseline", result)


def measure_pgqueuer(python: str, url: str, server: ServerCPU, jobs: int) -> dict:
    argv = [python, str(PEER), "--dsn", conninfo(url), "--jobs", str(jobs)]
    argv += ["--consumers", "1", "--batch", "10"]
    result = _run(argv, None, server)
    if result["jobs"] != jobs or result["left"]:
        raise RuntimeError(f"pgqueuer drained {result['jobs']} of {jobs}: {result}")
    return _announce("pgqueuer", result)


def _run(argv: list[str], env: dict[str, str] | None, server: ServerCPU) -> dict:
    """One side's run: its own JSON line, and the server's CPU seconds over the whole process
    (its set-up too: an upper bound)."""
    before = server.seconds()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    after = server.seconds()
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    result["server"] = None if before is None or after is None else after - before
    return result


def _announce(side: str, result: dict) -> dict:
    jobs = result["jobs"]
    server = result["server"]
    print(
        f"  {side:<9} {jobs:>6} in {result['seconds']:6.2f} s  {result['rate']:>6.0f}/s  "
        f"CPU {result['user']:5.2f} user + {result['system']:5.2f} system "
        f"({(result['user'] + result['system']) / jobs * 1e6:4.0f} µs per token)"
        + ("" if server is None else f", server {server / jobs * 1e6:4.0f} µs per token"),
        file=sys.stderr,
        flush=True,
    )
    return result


def summarise(runs: dict[str, list[dict]]) -> None:
    print(
        f"{'side':<9} {'per s':>7} {'min-max':>11} {'user µs':>8} {'sys µs':>7} {'CPU µs':>7}"
        f" {'server µs':>9}"
    )
    for side, results in runs.items():
        rates = [r["rate"] for r in results]
        user = statistics.median(r["user"] / r["jobs"] * 1e6 for r in results)
        system = statistics.median(r["system"] / r["jobs"] * 1e6 for r in results)
        known = [r["server"] / r["jobs"] * 1e6 for r in results if r["server"] is not None]
        server = f"{statistics.median(known):.0f}" if known else "?"
        print(
            f"{side:<9} {statistics.median(rates):>7.0f} "
            f"{f'{min(rates):.0f}-{max(rates):.0f}':>11} {user:>8.0f} {system:>7.0f} "
            f"{user + system:>7.0f} {server:>9}"
        )
    for other, goal in (("pgqueuer", "; goal >= 1.0, stretch 1.5"), ("baseline", "")):
        if runs.get(other):
            paired = zip(runs["glisk"], runs[other], strict=True)
            pairs = [glisk["rate"] / peer["rate"] for glisk, peer in paired]
            ratio = statistics.median(r["rate"] for r in runs["glisk"]) / statistics.median(
                r["rate"] for r in runs[other]
            )
            print(
                f"glisk / {other}: {ratio:.2f} (medians; pairs "
                f"{', '.join(f'{p:.2f}' for p in pairs)}{goal})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="use this server (scratch databases on it)")
    parser.add_argument("--pgqueuer-python", help="a Python with pgqueuer and asyncpg")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run the glisk package in DIR (a checkout of an earlier commit), alternating",
    )
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--profile", metavar="FILE", help="py-spy one more glisk run into FILE")
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy binary")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
        return
    runs: dict[str, list[dict]] = {"glisk": [], "pgqueuer": [], "baseline": []}
    with (
        scratch_database(args.database_url, "glisk_bench_inprocess") as url,
        sibling_database(url, "glisk_bench_pgqueuer") as peer_url,
    ):
        migrate_with_author(url, "bench")
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        print(
            f"# {machine()}"
            f" · PostgreSQL {version[0] if version else '?'}"
            f" · load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {args.tokens} tokens · "
            f"concurrency {CONCURRENCY} · {args.repetitions} repetitions, alternating, medians",
            flush=True,
        )
        server = ServerCPU(url)
        measure_glisk(url, server, 2_000)  # warm-up: the server's caches, the bytecode
        for repetition in range(args.repetitions):
            sides = ["glisk", "pgqueuer", "baseline"]
            for side in sides if repetition % 2 == 0 else reversed(sides):
                if side == "glisk":
                    runs["glisk"].append(measure_glisk(url, server, args.tokens))
                elif side == "baseline" and args.baseline:
                    baseline = measure_glisk(url, server, args.tokens, source=args.baseline)
                    runs["baseline"].append(baseline)
                elif side == "pgqueuer" and args.pgqueuer_python:
                    runs["pgqueuer"].append(
                        measure_pgqueuer(args.pgqueuer_python, peer_url, server, args.tokens)
                    )
        if args.profile:
            measure_glisk(
                url, server, args.tokens, (args.py_spy, str(Path(args.profile).absolute()))
            )
    print(f"# load average at the end: {os.getloadavg()[0]:.1f}")
    summarise({side: results for side, results in runs.items() if results})


if __name__ == "__main__":
    main()
