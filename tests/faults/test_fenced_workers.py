"""Racing workers whose leases lapse mid-work: the lease-id fence lets exactly one advance win.

Eight real worker processes claim small batches under a one-second lease, then pause — often
longer than the lease, some renewing as they go — and advance their whole batch, writing their
own name into each token's image_path. A worker whose lease ran out and was taken over still
tries to advance; the fence must refuse it, so no token moves twice, none is lost, and no stale
worker overwrites the winner's result.

The worker is this module run as a program:

    python -m tests.faults.test_fenced_workers URL NAME SEED

It prints one JSON object per batch on stdout, then `{"finished": true}`.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

REPOSITORY = Path(__file__).resolve().parents[2]
WORKERS = 8
TOKENS = 300
BATCH = 5
LEASE = timedelta(seconds=1)
MAX_PAUSE_S = 1.5  # longer than the lease: a worker that does not renew can lose its batch
WORKER_TIME_BOUND_S = 45.0


def say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def work(url: str, name: str, seed: int) -> None:
    """Claim, pause (renewing or not), advance — until nothing is left to generate."""
    from glisk_cli.db import setup_db_session
    from glisk_cli.uow import create_uow_factory

    rng = random.Random(seed)  # noqa: S311 -- pauses, not secrets; seeded to vary per worker
    uow_factory = create_uow_factory(setup_db_session(url, pool_size=1))
    stop_at = time.monotonic() + WORKER_TIME_BOUND_S
    while time.monotonic() < stop_at:
        with uow_factory() as uow:
            claimed = uow.tokens.claim("generation", BATCH, name, LEASE)
        if not claimed:
            with uow_factory() as uow:
                left = uow.session.execute(
                    text(
                        "SELECT count(*) FROM tokens_s0 WHERE status IN ('detected', 'generating')"
                    )
                ).scalar_one()
            if left == 0:
                say(finished=True)
                return
            time.sleep(0.05)  # someone holds the rest: wait for it to finish or lapse
            continue

        renewing = rng.random() < 0.5
        pause_until = time.monotonic() + rng.uniform(0, MAX_PAUSE_S)
        held_through = True  # every renewal still returned the whole batch
        if renewing:
            while (remaining := pause_until - time.monotonic()) > 0:
                time.sleep(min(LEASE.total_seconds() / 3, remaining))
                with uow_factory() as uow:
                    held = uow.tokens.renew(claimed, LEASE)
                held_through = held_through and len(held) == len(claimed)
        else:
            time.sleep(max(0.0, pause_until - time.monotonic()))

        # The whole claimed batch, held or not: a stale advance must be refused, not prevented.
        with uow_factory() as uow:
            result = uow.tokens.advance(
                [(token, {"image_path": f"{name}:{token.token_id}"}) for token in claimed]
            )
        say(
            worker=name,
            claimed=[token.token_id for token in claimed],
            renewing=renewing,
            held_through=held_through,
            moved=result.moved,
            refused={str(token_id): reason for token_id, reason in result.refused.items()},
        )
    say(finished=False)


def start_worker(url: str, name: str, seed: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.test_fenced_workers", url, name, str(seed)],
        cwd=REPOSITORY,
        env={**env, "PYTHONPATH": str(REPOSITORY)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.soak
def test_stale_workers_never_advance_a_token_taken_over_by_another_claim(
    migrated_url: str, session_factory, glisk_env: dict[str, str]
) -> None:
    from tests.conftest import seed_tokens

    seed_tokens(session_factory, TOKENS)
    names = [f"w{index}" for index in range(WORKERS)]
    processes = [
        start_worker(migrated_url, name, seed, glisk_env) for seed, name in enumerate(names)
    ]
    outputs = [process.communicate(timeout=WORKER_TIME_BOUND_S + 20) for process in processes]

    batches: list[dict[str, Any]] = []
    for name, process, (stdout, stderr) in zip(names, processes, outputs, strict=True):
        assert process.returncode == 0, f"{name} exited {process.returncode}: {stderr}"
        messages = [json.loads(line) for line in stdout.splitlines()]
        assert messages[-1] == {"finished": True}, f"{name} hit its time bound: {stderr}"
        batches += messages[:-1]

    with session_factory() as session:
        rows = session.execute(
            text("SELECT token_id, status::text, image_path FROM tokens_s0")
        ).all()
    status = {token_id: state for token_id, state, _ in rows}
    image_path = {token_id: path for token_id, _, path in rows}

    # None lost: every token made it through generation.
    assert set(status.values()) == {"uploading"}, Counter(status.values())
    # No token advanced twice, and every token was advanced by someone.
    moved = [token_id for batch in batches for token_id in batch["moved"]]
    duplicates = [token_id for token_id, count in Counter(moved).items() if count > 1]
    assert not duplicates, f"advanced more than once: {sorted(duplicates)}"
    assert set(moved) == set(status) == set(range(1, TOKENS + 1))
    # The stored result is the winner's: a late advance never overwrote it.
    winner = {token_id: batch["worker"] for batch in batches for token_id in batch["moved"]}
    wrong = {t: p for t, p in image_path.items() if p != f"{winner[t]}:{t}"}
    assert not wrong, f"image_path not written by the worker that moved the token: {wrong}"

    # Each refusal is a lost lease, whether the new holder still has the token or has already
    # moved it on. A worker that kept renewing its whole batch lost none of it, and the race did
    # happen.
    reasons = Counter(reason for batch in batches for reason in batch["refused"].values())
    assert set(reasons) <= {"lease_lost"}, reasons
    kept_renewing = [batch for batch in batches if batch["renewing"] and batch["held_through"]]
    assert kept_renewing
    assert not [batch for batch in kept_renewing if batch["refused"]]
    assert reasons.total() > 0, "no worker's lease was taken over: the race never happened"


if __name__ == "__main__":
    url_arg, name_arg, seed_arg = sys.argv[1:]
    work(url_arg, name_arg, int(seed_arg))
