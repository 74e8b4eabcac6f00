"""The example workers (examples/), run by `glisk work` against local stand-ins of the services
they pay or sign for (tests/work/standins.py): a drop goes through all three stages, and
with runners killed at random, checkpoints keep every side effect to one per token — which the
same run without them does not."""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import seed_tokens
from tests.work.jobs import REPOSITORY
from tests.work.runners import RunnerProcess
from tests.work.standins import Chain, ImageService, PinService, standins

EXAMPLES = REPOSITORY / "examples"
STAGES = {
    "generation": ["--concurrency", "4"],
    "upload": ["--concurrency", "4"],
    "reveal": ["--batch", "50"],
}


def _env(work_env: dict[str, str], image: ImageService, pins: PinService, chain: Chain):
    return {
        **work_env,
        "IMAGE_SERVICE_URL": image.url,
        "PIN_SERVICE_URL": pins.url,
        "REVEAL_RPC_URL": chain.url,
        "REVEAL_KEY": Chain.KEY,
    }


def _runner(tmp: Path, env: dict[str, str], stage: str, name: str, *flags: str) -> RunnerProcess:
    program = {"generation": "generate.py", "upload": "upload.py", "reveal": "reveal.py"}[stage]
    argv = [sys.executable, str(EXAMPLES / program), *flags]
    return RunnerProcess(tmp, env, stage, *STAGES[stage], "--lease", "4s", "--", *argv, name=name)


def _revealed(query) -> int:
    return query("SELECT count(*) FROM tokens_s0 WHERE status = 'revealed'")[0][0]


def _drop(tmp: Path, env: dict[str, str], query, tokens: int, *, chaos: bool, flags=()) -> None:
    """Run every stage until all `tokens` are revealed; with `chaos`, kill -9 a random runner
    every 0.5 to 2 s and start a new one in its place."""
    runners = {
        f"{stage}-{n}": (stage, _runner(tmp, env, stage, f"{stage}-{n}", *flags))
        for stage in STAGES
        for n in range(2 if stage != "reveal" else 1)
    }
    rng = random.Random(27)  # noqa: S311 — a seeded stream, for a test
    kills = 0
    try:
        deadline = time.monotonic() + (600 if chaos else 60)
        while _revealed(query) < tokens:
            if time.monotonic() > deadline:
                states = query("SELECT status, count(*) FROM tokens_s0 GROUP BY 1")
                logs = {name: runner.stderr[-1500:] for name, (_, runner) in runners.items()}
                raise AssertionError(f"the drop never finished: {states}\n{logs}")
            time.sleep(rng.uniform(0.5, 2.0) if chaos else 0.2)
            if chaos:
                name = rng.choice(sorted(runners))
                stage, victim = runners[name]
                victim.process.kill()
                victim.wait()
                kills += 1
                runners[name] = (stage, _runner(tmp, env, stage, f"{name}-{kills}", *flags))
    finally:
        for _, runner in runners.values():
            runner.process.terminate()
        for _, runner in runners.values():
            runner.wait(60)


def _checks(image: ImageService, pins: PinService, chain: Chain, tokens: int) -> dict[str, int]:
    """How many side effects were repeated: predictions paid for twice, pins made twice, nonces
    used for two transactions, tokens in two mined reveals."""
    mined = chain.reveals()
    nonces = Counter(tx["nonce"] for tx in mined)
    revealed = Counter(token_id for tx in mined for token_id in tx["token_ids"])
    assert set(revealed) == set(range(1, tokens + 1))
    return {
        "paid twice": sum(1 for n in image.created.values() if n > 1),
        "pinned twice": sum(1 for n in pins.pins.values() if n > 1),
        "nonce twice": sum(1 for n in nonces.values() if n > 1),
        "revealed twice": sum(1 for n in revealed.values() if n > 1),
    }


@pytest.mark.soak  # three stages of real runners, web3 among them: seconds of two cores
def test_a_drop_goes_through_all_three_stages_with_the_examples(
    work_env, session_factory, query, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 6)
    with standins() as (image, pins, chain):
        _drop(tmp_path, _env(work_env, image, pins, chain), query, 6, chaos=False)
        repeated = _checks(image, pins, chain, 6)
    assert repeated == dict.fromkeys(repeated, 0)
    assert image.created == Counter(dict.fromkeys(range(1, 7), 1))
    # Each transaction checkpointed as pending, then confirmed by the job's answer: one row each.
    history = query(
        "SELECT status, sum(cardinality(token_ids)) FROM reveal_transactions GROUP BY 1"
    )
    assert [tuple(row) for row in history] == [("confirmed", 6)]


@pytest.mark.soak
def test_killed_runners_never_repeat_a_side_effect_with_checkpoints(
    work_env, session_factory, query, uow_factory, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 1000)
    with uow_factory() as uow:
        uow.stages.limit("reveal", concurrency=1)  # one signer
    with standins() as (image, pins, chain):
        _drop(tmp_path, _env(work_env, image, pins, chain), query, 1000, chaos=True)
        repeated = _checks(image, pins, chain, 1000)
    # A pin is content-addressed: one repeated (killed between the pin and its checkpoint)
    # pins the same CID again, which changes nothing. What costs money or is irreversible is
    # never repeated: a prediction, a nonce, a reveal.
    del repeated["pinned twice"]
    assert repeated == dict.fromkeys(repeated, 0)


@pytest.mark.soak
def test_without_checkpoints_the_same_chaos_repeats_side_effects(
    work_env, session_factory, query, uow_factory, tmp_path: Path
) -> None:
    seed_tokens(session_factory, 200)
    with uow_factory() as uow:
        uow.stages.limit("reveal", concurrency=1)
    with standins() as (image, pins, chain):
        env = _env(work_env, image, pins, chain)
        _drop(tmp_path, env, query, 200, chaos=True, flags=("--no-checkpoints",))
        repeated = _checks(image, pins, chain, 200)
    assert repeated["paid twice"] > 0, repeated
