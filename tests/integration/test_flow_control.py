"""Flow control in the claim: a paused or cooling stage hands out nothing, a concurrency limit
counts jobs (a batch is one) fleet-wide and exactly, a rate limit is a token bucket over job
starts — for every claimer, whatever it was told when it started."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from glisk_cli.errors import InvalidInput
from glisk_cli.flow import Rate
from tests.conftest import expire_leases, seed_tokens

LEASE = timedelta(minutes=5)


def _claim(uow_factory, limit: int = 10, *, stage: str = "generation", job_size: int = 1):
    with uow_factory() as uow:
        return uow.tokens.claim(stage, limit, "w", LEASE, job_size=job_size)


def test_a_paused_stage_hands_out_nothing_until_resumed(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 5)
    with uow_factory() as uow:
        uow.stages.pause("generation", reason="GPU maintenance")
    assert _claim(uow_factory) == []
    with uow_factory() as uow:
        state = uow.stages.state("generation")
        uow.stages.resume("generation")
    blocked = state.blocked()
    assert blocked is not None
    assert (blocked.reason, blocked.until) == ("paused", None)
    assert "GPU maintenance" in blocked.message
    assert len(_claim(uow_factory)) == 5


def test_a_pause_until_a_time_resumes_by_itself(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 2)
    with uow_factory() as uow:
        uow.stages.pause("generation", until=datetime.now(UTC) + timedelta(seconds=0.5))
    assert _claim(uow_factory) == []
    time.sleep(0.6)
    assert len(_claim(uow_factory)) == 2


def test_a_pause_until_a_past_time_is_refused_and_changes_nothing(uow_factory) -> None:
    with pytest.raises(InvalidInput, match="in the past"), uow_factory() as uow:
        uow.stages.pause("generation", until=datetime.now(UTC) - timedelta(minutes=1))
    with uow_factory() as uow:
        assert not uow.stages.state("generation").paused


def test_pausing_one_stage_leaves_the_others_running(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 2, status="uploading")
    with uow_factory() as uow:
        uow.stages.pause("generation")
    assert len(_claim(uow_factory, stage="upload")) == 2


def test_a_concurrency_limit_counts_single_token_jobs(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 10)
    with uow_factory() as uow:
        uow.stages.limit("generation", concurrency=3)
    first = _claim(uow_factory, 2)
    second = _claim(uow_factory, 5)
    assert (len(first), len(second)) == (2, 1)
    assert _claim(uow_factory) == []
    with uow_factory() as uow:
        uow.tokens.advance([(first[0], {"image_path": "a.png"})])
    assert len(_claim(uow_factory)) == 1  # a job ended: one more may start


def test_a_batch_is_one_job_under_a_limit_of_one(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 120, status="ready")
    with uow_factory() as uow:
        uow.stages.limit("reveal", concurrency=1)
    batch = _claim(uow_factory, 50, stage="reveal", job_size=50)
    assert len(batch) == 50
    assert len({token.lease_id for token in batch}) == 1
    assert _claim(uow_factory, 50, stage="reveal", job_size=50) == []


def test_an_expired_lease_frees_its_slot(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 4)
    with uow_factory() as uow:
        uow.stages.limit("generation", concurrency=2)
    assert len(_claim(uow_factory)) == 2
    expire_leases(session_factory)
    assert len(_claim(uow_factory)) == 2


def test_a_lowered_limit_starts_nothing_until_fewer_run(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 10)
    running = _claim(uow_factory, 4)
    with uow_factory() as uow:
        uow.stages.limit("generation", concurrency=2)
    with uow_factory() as uow:
        uow.tokens.release(running[:1])
    assert _claim(uow_factory) == []  # three run, the limit is two
    with uow_factory() as uow:
        uow.tokens.release(running[1:3])
    assert len(_claim(uow_factory)) == 1


def test_concurrent_claimers_never_exceed_the_limit(session_factory, uow_factory) -> None:
    # Claimers in parallel, each holding its jobs for a moment before ending them: at every
    # commit, the jobs running fleet-wide are at most the limit, and the limit is reached.
    seed_tokens(session_factory, 400)
    with uow_factory() as uow:
        uow.stages.limit("generation", concurrency=5)
    peak = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def claimer() -> None:
        try:
            for _ in range(25):
                held = _claim(uow_factory, 3)
                with uow_factory() as uow:
                    running = uow.stages.state("generation").running
                with lock:
                    peak[0] = max(peak[0], running)
                time.sleep(0.002)
                if held:
                    with uow_factory() as uow:
                        uow.tokens.advance([(t, {"image_path": "x.png"}) for t in held])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=claimer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert peak[0] == 5


def test_a_rate_limit_starts_its_burst_then_one_per_interval(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 20)
    with uow_factory() as uow:
        uow.stages.limit("generation", rate=Rate(4, 1), burst=2)
    assert len(_claim(uow_factory)) == 2  # the bucket starts full
    with uow_factory() as uow:
        state = uow.stages.state("generation")
    blocked = state.blocked()
    assert blocked is not None
    assert blocked.reason == "rate_limited"
    assert blocked.until is not None
    assert blocked.until - state.now <= timedelta(seconds=0.25)
    time.sleep(0.3)
    assert len(_claim(uow_factory)) == 1


def test_a_claim_that_finds_less_spends_only_what_it_started(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 1)
    with uow_factory() as uow:
        uow.stages.limit("generation", rate=Rate(1, 60), burst=3)
    assert len(_claim(uow_factory)) == 1
    with uow_factory() as uow:
        bucket = uow.stages.state("generation").bucket
    assert bucket is not None
    assert 1.99 < bucket < 2.1


def test_a_cooldown_stops_starts_and_zero_ends_it(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 3)
    with uow_factory() as uow:
        uow.stages.cool_down("generation", timedelta(seconds=30), reason="429")
    assert _claim(uow_factory) == []
    with uow_factory() as uow:  # a job asking for less does not shorten it
        uow.stages.cool_down("generation", timedelta(seconds=1), extend=True)
        state = uow.stages.state("generation")
    assert state.cooldown_until is not None
    assert state.cooldown_until - state.now > timedelta(seconds=25)
    assert state.cooldown_reason == "429"
    with uow_factory() as uow:
        uow.stages.cool_down("generation", timedelta(0))
    assert len(_claim(uow_factory)) == 3


def test_a_pause_waits_for_the_claims_under_way(session_factory, uow_factory) -> None:
    # A claim's transaction holds the stage's controls shared until it commits; the pause
    # waits for it, so no claim that started before the pause commits after it.
    seed_tokens(session_factory, 3)
    paused = threading.Event()
    with uow_factory() as uow:
        uow.tokens.claim("generation", 1, "w", LEASE)

        def pause() -> None:
            with uow_factory() as other:
                other.stages.pause("generation")
            paused.set()

        thread = threading.Thread(target=pause)
        thread.start()
        assert not paused.wait(0.3)
    thread.join(5)
    assert paused.is_set()
    assert _claim(uow_factory) == []


def test_lifting_the_limits_lets_every_claim_through(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 6)
    with uow_factory() as uow:
        uow.stages.limit("generation", concurrency=1, rate=Rate(1, 60))
    assert len(_claim(uow_factory)) == 1
    with uow_factory() as uow:
        uow.stages.limit("generation", concurrency=None, rate=None)
        assert not uow.stages.state("generation").limited
    assert len(_claim(uow_factory)) == 5


def test_a_stage_never_changed_has_no_controls(session_factory, uow_factory) -> None:
    with session_factory() as session:
        assert session.execute(text("SELECT count(*) FROM stage_controls")).scalar_one() == 0
    with uow_factory() as uow:
        states = uow.stages.states()
    assert [s.stage for s in states] == ["generation", "upload", "reveal"]
    assert all(s.blocked() is None and not s.limited for s in states)
