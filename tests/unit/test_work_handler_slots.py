"""A Python handler's slots (work/executor.py, HandlerSlots): the function is called in the slot's
thread, and a kill or the timeout ends its job at once while the function runs on, its slot
going to a new thread. Real threads, no database."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from glisk_cli.pipeline import STAGES, StageName, TokenStatus
from glisk_cli.work.executor import HandlerSlots
from glisk_cli.work.jobs import Job
from glisk_cli.work.options import WorkOptions
from glisk_cli.work.programs import Handler
from glisk_cli.work.protocol import Failed, Interrupted, Succeeded
from tests.unit.records import claimed_token

GENERATION = STAGES[StageName.GENERATION]


def job(token_id: int) -> Job:
    return Job([claimed_token(token_id, TokenStatus.GENERATING)])


def ended(slots: HandlerSlots, count: int, within: float = 5.0) -> list[Job]:
    """The next `count` jobs to end, waiting up to `within` seconds for them."""
    found: list[Job] = []
    deadline = time.monotonic() + within
    while len(found) < count and time.monotonic() < deadline:
        found += slots.ended()
        time.sleep(0.005)
    assert len(found) == count, f"{len(found)} of {count} jobs ended"
    return found


def slots_for(function: Any, **given: Any) -> HandlerSlots:
    options = WorkOptions(StageName.GENERATION, "w:1", **given)
    return HandlerSlots(Handler(function), GENERATION, options, lambda: None)


def test_the_function_runs_in_the_slots_thread_and_its_answer_is_each_tokens_outcome() -> None:
    threads: list[threading.Thread] = []

    def generate(token: Any) -> dict[str, str]:
        threads.append(threading.current_thread())  # the object: an ident may be reused
        return {"image_path": f"{token.token_id}.png"}

    slots = slots_for(generate, concurrency=2)
    try:
        slots.submit([job(n) for n in range(1, 7)])
        jobs = ended(slots, 6)
    finally:
        slots.close()
    outcomes = {j.tokens[0].token_id: j.outcomes[j.tokens[0].id] for j in jobs if j.outcomes}
    assert outcomes == {n: Succeeded({"image_path": f"{n}.png"}) for n in range(1, 7)}
    # Called in the slots' own threads: two of them for six calls, not a thread per call.
    assert {thread.name for thread in threads} == {"glisk-work-slot"}
    assert len(set(threads)) <= 2
    assert not slots.running()


def test_a_kill_ends_a_running_job_at_once_and_a_new_thread_takes_its_slot() -> None:
    release, returned = threading.Event(), threading.Event()
    calls: list[int] = []

    def generate(token: Any) -> dict[str, str]:
        calls.append(token.token_id)
        if token.token_id == 1:
            release.wait(10)  # a call that hangs, until the test lets it go
            returned.set()
        return {"image_path": "x.png"}

    slots = slots_for(generate, concurrency=1)
    try:
        stuck = job(1)
        slots.submit([stuck])
        while not calls:
            time.sleep(0.005)
        stuck.kill("lease_lost")
        [killed] = ended(slots, 1)
        assert killed is stuck
        assert stuck.outcomes == {stuck.tokens[0].id: Interrupted("lease_lost")}
        slots.submit([job(2)])  # the one slot is free although the call of job 1 runs on
        [second] = ended(slots, 1)
        assert second.outcomes == {second.tokens[0].id: Succeeded({"image_path": "x.png"})}
        release.set()  # the first call returns: its answer is dropped, nothing ends twice
        assert returned.wait(5)
        time.sleep(0.05)  # what the slot does with the late answer, it does at once
        assert slots.ended() == []
        assert stuck.outcomes == {stuck.tokens[0].id: Interrupted("lease_lost")}
    finally:
        release.set()
        slots.close()


def test_a_call_past_the_timeout_fails_its_attempt_and_frees_its_slot() -> None:
    release = threading.Event()

    def generate(token: Any) -> dict[str, str]:
        if token.token_id == 1:
            release.wait(10)
        return {"image_path": "x.png"}

    slots = slots_for(generate, concurrency=1, timeout=timedelta(milliseconds=50))
    try:
        slow, quick = job(1), job(2)
        slots.submit([slow, quick])
        first, second = ended(slots, 2)
        assert first is slow
        outcome = slow.outcomes[slow.tokens[0].id] if slow.outcomes else None
        assert isinstance(outcome, Failed)
        assert outcome.error["message"].startswith("timed out after ")
        assert slow.killed is None  # the attempt failed; the runner stopped nothing
        assert second is quick
        assert quick.outcomes == {quick.tokens[0].id: Succeeded({"image_path": "x.png"})}
    finally:
        release.set()
        slots.close()
