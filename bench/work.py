"""`glisk work`: what the runner adds to the work it runs, and a chaos soak of the pipeline.

**Overhead.** N detected tokens (default 1,000) are worked through by `glisk work generation
--concurrency 8 --drain` with a no-op command, `printf '{"image_path": "x"}'`: the runner's cost
per token — claim, history rows, lease renewal, stdin and stdout plumbing, the advance —
against the floor: the same command spawned N times, 8 at a time, with the same token document
on its stdin, by a plain thread pool (`subprocess.run`). The runner's time is its loop's, from
its own summary (from before the first claim until it found the stage drained; the
interpreter's start-up is left out, as it is once per runner, not per token). Runs alternate
with the floor, each on a freshly seeded table; medians are reported. Goal: at most 1.15 times
the floor. Each run also times the runner's own spawner without the database (its command
slots over made-up tokens, in this process like the floor): the runner over it is what the
database work adds; and the same loop with a Python handler that returns at once (no process
at all): what the runner itself costs per token.

**Chaos soak** (`--soak`). T tokens (default 300) go through the whole pipeline — generation,
upload, reveal (reveal in batches of 10) — by two runners per stage, while a chaos loop
SIGKILLs a random runner every 1 to 3 s and starts a replacement. Jobs are shell commands that
write a side-effect line per token and then answer. At the end every token must be revealed,
and no side effect may have run more than (kills + 1) times; the script exits 1 otherwise.

    uv run python bench/work.py                  # overhead, 9 alternating runs
    uv run python bench/work.py --soak           # overhead, then the chaos soak
    uv run python bench/work.py --quick          # a smoke run of both

With --database-url the script works in a scratch database on that server; without, on an
embedded server started for it in a temporary directory. Both are removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from scratch import conninfo, migrate_with_author, process_env, scratch_database

GLISK = str(Path(sys.executable).with_name("glisk"))
NO_OP = ["printf", '{"image_path": "x"}']
# A token document as the runner writes it (the floor's command gets the same bytes).
DOCUMENT = json.dumps(
    {
        "id": "8f0b8a39-5c1e-4a53-9e0e-4f3f3c1d2b10",
        "token_id": 1,
        "author_id": "5b8e2a51-3a7f-4f7e-8d0a-0c4b0e4d1f22",
        "minter_address": "0x00000000000000000000000000000000000000bb",
        "status": "generating",
        "mint_timestamp": "2026-01-01T00:00:01Z",
        "image_path": None,
        "image_cid": None,
        "metadata_cid": None,
        "reveal_tx_hash": None,
        "error_data": None,
        "claimed_by": "w:1",
        "lease_expires_at": "2026-01-01T00:01:01Z",
        "attempts": 1,
        "created_at": "2026-01-01T00:00:01Z",
        "updated_at": "2026-01-01T00:00:01Z",
        "lease_id": "0d7b2c7e-8b5b-4a4c-a3b4-7c2f5d8e9a01",
        "checkpoint": None,
    }
).encode()


def seed(url: str, tokens: int) -> None:
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute("TRUNCATE tokens_s0 CASCADE")
        conn.execute(
            """
            INSERT INTO tokens_s0 (token_id, author_id, minter_address, status, mint_timestamp)
            SELECT n, (SELECT id FROM authors LIMIT 1),
                   '0x00000000000000000000000000000000000000bb', 'detected',
                   timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second'
            FROM generate_series(1, %(last)s) AS n
            """,
            {"last": tokens},
        )
        conn.execute("VACUUM ANALYZE tokens_s0")


def floor_run(tokens: int, concurrency: int) -> float:
    """Spawn the no-op command `tokens` times, `concurrency` at a time, document on stdin."""

    def spawn(_: int) -> None:
        subprocess.run(NO_OP, input=DOCUMENT, capture_output=True, check=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(spawn, range(tokens)))
    return time.perf_counter() - started


def spawner_run(tokens: int, concurrency: int) -> float:
    """The runner's own spawner without the database: glisk's command slots run the no-op
    command for `tokens` made-up claimed tokens, `concurrency` at a time. The runner over
    this is what its database work (claim, history, advance, commit) adds."""
    from glisk_cli.pipeline import STAGES, StageName, TokenStatus
    from glisk_cli.repositories.token_records import ClaimedToken
    from glisk_cli.work.command_slots import CommandSlots
    from glisk_cli.work.jobs import Job
    from glisk_cli.work.options import WorkOptions
    from glisk_cli.work.programs import Command

    now = datetime.now(UTC)
    jobs = [
        Job(
            [
                ClaimedToken(
                    id=uuid.uuid4(),
                    token_id=n,
                    author_id=uuid.uuid4(),
                    minter_address="0x" + "b" * 40,
                    status=TokenStatus.GENERATING,
                    mint_timestamp=now,
                    image_path=None,
                    image_cid=None,
                    metadata_cid=None,
                    reveal_tx_hash=None,
                    error_data=None,
                    claimed_by="w:1",
                    lease_expires_at=now,
                    attempts=1,
                    created_at=now,
                    updated_at=now,
                    lease_id=uuid.uuid4(),
                    checkpoint=None,
                )
            ]
        )
        for n in range(tokens)
    ]
    options = WorkOptions(StageName.GENERATION, "w:1", concurrency=concurrency)
    woken = threading.Semaphore(0)
    slots = CommandSlots(Command(NO_OP), STAGES[StageName.GENERATION], options, woken.release)
    started = time.perf_counter()
    slots.submit(jobs)
    ended = 0
    while ended < tokens:
        woken.acquire()
        ended += len(slots.ended())
    elapsed = time.perf_counter() - started
    slots.close()
    return elapsed


def runner_run(url: str, tokens: int, concurrency: int) -> float:
    env = {**process_env(), "DATABASE_URL": url}
    argv = [
        GLISK,
        "work",
        "generation",
        "--concurrency",
        str(concurrency),
        "--drain",
        "--json",
        "--",
        *NO_OP,
    ]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    summary = json.loads(result.stdout)
    if summary["succeeded"] != tokens:
        raise SystemExit(f"the runner finished {summary['succeeded']} of {tokens}: {result.stderr}")
    return float(summary["seconds"])


_HANDLER = (
    "import json; from glisk_cli.work import work; "
    "print(json.dumps(work('generation', lambda t: {'image_path': 'x'}, concurrency=%d, "
    "drain=True)))"
)


def handler_run(url: str, tokens: int, concurrency: int) -> float:
    """The runner's own cost: the same loop with a Python handler that returns at once."""
    env = {**process_env(), "DATABASE_URL": url}
    argv = [sys.executable, "-c", _HANDLER % concurrency]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    if summary["succeeded"] != tokens:
        raise SystemExit(f"the handler finished {summary['succeeded']} of {tokens}")
    return float(summary["seconds"])


def overhead(url: str, tokens: int, concurrency: int, runs: int) -> None:
    times: dict[str, list[float]] = {"floor": [], "runner": [], "spawner": []}
    handlers: list[float] = []
    for run in range(runs):
        seed(url, tokens)
        order = [
            ("floor", lambda: floor_run(tokens, concurrency)),
            ("runner", lambda: runner_run(url, tokens, concurrency)),
            ("spawner", lambda: spawner_run(tokens, concurrency)),
        ]
        for name, measure in order if run % 2 == 0 else reversed(order):
            seconds = measure()
            times[name].append(seconds)
            print(f"  run {run + 1} {name}: {seconds:.3f} s", file=sys.stderr)
        seed(url, tokens)
        handlers.append(handler_run(url, tokens, concurrency))
        print(f"  run {run + 1} handler: {handlers[-1]:.3f} s", file=sys.stderr)
    floors, runners = times["floor"], times["runner"]
    floor, runner = statistics.median(floors), statistics.median(runners)
    spawner, handler = statistics.median(times["spawner"]), statistics.median(handlers)
    print(f"\noverhead: {tokens} tokens, concurrency {concurrency}, {runs} runs (medians)")
    print(f"  floor (spawn only)   {floor:.3f} s   {floor / tokens * 1000:.2f} ms/token")
    print(f"  glisk work           {runner:.3f} s   {runner / tokens * 1000:.2f} ms/token")
    print(
        f"  its spawner alone    {spawner:.3f} s   {spawner / tokens * 1000:.2f} ms/token"
        f"   (no database; glisk work is {runner / spawner:.2f}x this)"
    )
    print(
        f"  no-op Python handler {handler:.3f} s   {handler / tokens * 1000:.2f} ms/token"
        "   (the runner's own work, no process)"
    )
    ratio = runner / floor
    verdict = "met" if ratio <= 1.15 else "NOT met"
    pairs = sorted(r / f for r, f in zip(runners, floors, strict=True))
    print(f"  ratio                {ratio:.2f}x the floor (goal: at most 1.15x; {verdict})")
    print(f"  run by run           {pairs[0]:.2f}x to {pairs[-1]:.2f}x (a runner over its floor)")


# -- the chaos soak ----------------------------------------------------------------------------

_ANSWER = {
    "generation": 'printf \'{"image_path": "images/%s.png"}\' "$GLISK_TOKEN_ID"',
    "upload": 'printf \'{"image_cid": "bafy%s", "metadata_cid": "bafm%s"}\' "$GLISK_TOKEN_ID" '
    '"$GLISK_TOKEN_ID"',
    "reveal": 'printf \'{"tx_hash": "0x%s"}\' "$(od -An -N32 -tx1 /dev/urandom | tr -d \' \\n\')"',
}


def _job(stage: str, effects: Path) -> list[str]:
    # One side-effect line per token, then a little work, then the answer.
    script = (
        f'cat >/dev/null; for t in $(echo "$GLISK_TOKEN_ID" | tr , " "); do '
        f'echo "{stage} $t" >> {effects}; done; sleep 0.0$((RANDOM % 5)); {_ANSWER[stage]}'
    )
    return ["bash", "-c", script]


def soak(url: str, tokens: int, seconds_limit: float) -> bool:
    seed(url, tokens)
    workdir = Path(tempfile.mkdtemp(prefix="glisk-soak-"))
    effects = workdir / "effects"
    env = {**process_env(), "DATABASE_URL": url, "GLISK_RETRY_BASE": "100ms"}
    stages = [("generation", []), ("upload", []), ("reveal", ["--batch", "10"])]
    rng = random.Random(7)

    def start(stage: str, extra: list[str]) -> subprocess.Popen[bytes]:
        argv = [
            GLISK,
            "work",
            stage,
            "--concurrency",
            "4",
            "--lease",
            "2s",
            *extra,
            "--",
            *_job(stage, effects),
        ]
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    runners = [(stage, extra, start(stage, extra)) for stage, extra in stages for _ in range(2)]
    kills = 0
    started = time.monotonic()
    next_kill = started + rng.uniform(1, 3)
    try:
        while True:
            with psycopg.connect(conninfo(url)) as conn:
                revealed = conn.execute(
                    "SELECT count(*) FROM tokens_s0 WHERE status = 'revealed'"
                ).fetchone()
            if revealed and revealed[0] == tokens:
                break
            if time.monotonic() - started > seconds_limit:
                print(f"soak: only {revealed} of {tokens} revealed in time", file=sys.stderr)
                return False
            if time.monotonic() >= next_kill:
                at = rng.randrange(len(runners))
                stage, extra, victim = runners[at]
                victim.kill()  # SIGKILL: no drain, no release
                victim.wait()
                kills += 1
                runners[at] = (stage, extra, start(stage, extra))
                next_kill = time.monotonic() + rng.uniform(1, 3)
            time.sleep(0.2)
        elapsed = time.monotonic() - started
    finally:
        for _, _, runner in runners:
            runner.send_signal(signal.SIGTERM)
        for _, _, runner in runners:
            runner.wait(timeout=60)
    runs = Counter(effects.read_text().split("\n")[:-1])
    most = max(runs.values())
    per_stage = {
        stage: sum(n for key, n in runs.items() if key.startswith(stage)) for stage, _ in stages
    }
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nchaos soak: {tokens} tokens revealed in {elapsed:.1f} s with {kills} runners killed")
    print(f"  side effects per stage: {per_stage} (tokens: {tokens} each)")
    print(f"  most runs of one side effect: {most} (bound: kills + 1 = {kills + 1})")
    return most <= kills + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database-url")
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--soak", action="store_true")
    parser.add_argument("--soak-tokens", type=int, default=300)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.runs, args.soak, args.soak_tokens = 200, 1, True, 60
    print(
        f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    with scratch_database(args.database_url, "glisk_bench_work") as url:
        migrate_with_author(url, "bench work")
        overhead(url, args.tokens, args.concurrency, args.runs)
        if args.soak and not soak(url, args.soak_tokens, seconds_limit=600):
            raise SystemExit(1)


if __name__ == "__main__":
    main()
