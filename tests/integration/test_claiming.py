"""Lease-based claiming: exclusive, ordered, expiring, bounded by max attempts."""

import json
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import text

from glisk_cli.errors import Conflict, InvalidInput
from glisk_cli.models import TokenStatus
from glisk_cli.pipeline import stage_named
from glisk_cli.repositories.array_literal import array_literal
from glisk_cli.repositories.token import TokenRepository
from glisk_cli.repositories.token_sql import claim_sql
from glisk_cli.uow import create_uow_factory
from tests.conftest import expire_leases, index_reads, seed_tokens

LEASE = timedelta(minutes=15)


def claim(uow_factory, stage="generation", limit=10, worker="w1", lease=LEASE, max_attempts=5):
    with uow_factory() as uow:
        return uow.tokens.claim(stage, limit, worker, lease, max_attempts)


def test_claim_returns_the_oldest_mints_first_and_writes_the_lease(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 15)
    tokens = claim(uow_factory, limit=10, worker="gen-1")

    assert [t.token_id for t in tokens] == list(range(1, 11))
    assert {t.status for t in tokens} == {TokenStatus.GENERATING}
    assert {t.claimed_by for t in tokens} == {"gen-1"}
    assert {t.attempts for t in tokens} == {1}
    assert all(t.lease_expires_at is not None for t in tokens)


def test_a_live_lease_keeps_tokens_from_every_other_claim(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 10)
    first = claim(uow_factory, limit=10, worker="a")
    second = claim(uow_factory, limit=10, worker="b")
    assert len(first) == 10
    assert second == []


def test_an_expired_lease_hands_the_tokens_to_another_worker_with_attempts_incremented(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 3)
    claim(uow_factory, limit=3, worker="crashed")
    expire_leases(session_factory)

    taken_over = claim(uow_factory, limit=3, worker="rescuer")

    assert [t.token_id for t in taken_over] == [1, 2, 3]
    assert {t.claimed_by for t in taken_over} == {"rescuer"}
    assert {t.attempts for t in taken_over} == {2}


def test_a_late_worker_whose_lease_was_taken_over_is_refused(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 1)
    claim(uow_factory, worker="slow")
    expire_leases(session_factory)
    claim(uow_factory, worker="fast")

    with pytest.raises(Conflict, match="leased to fast, not to slow"), uow_factory() as uow:
        uow.tokens.transition(1, TokenStatus.UPLOADING, worker="slow", image_path="late.png")
    with uow_factory() as uow:
        token = uow.tokens.transition(1, TokenStatus.UPLOADING, worker="fast", image_path="a.png")
    assert token.status is TokenStatus.UPLOADING
    assert token.image_path == "a.png"


def test_tokens_that_used_up_their_attempts_are_failed_with_the_reason(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 2)
    for attempt in range(3):
        assert len(claim(uow_factory, limit=2, worker=f"w{attempt}", max_attempts=3)) == 2
        expire_leases(session_factory)

    assert claim(uow_factory, limit=2, worker="w-last", max_attempts=3) == []
    with uow_factory() as uow:
        failed = uow.tokens.get_by_status(TokenStatus.FAILED)
    assert [t.token_id for t in failed] == [1, 2]
    assert failed[0].error_data is not None
    assert failed[0].error_data["reason"] == "max_attempts"
    assert failed[0].error_data["attempts"] == 3
    assert failed[0].claimed_by is None


def test_reap_fails_tokens_that_used_up_their_attempts_and_no_live_lease_holds(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 2)
    claim(uow_factory, limit=1, worker="w", max_attempts=1)  # token 1: one attempt, leased
    with uow_factory() as uow:
        assert uow.tokens.reap(max_attempts=1) == []  # its lease is still live
    expire_leases(session_factory)
    with uow_factory() as uow:
        reaped = uow.tokens.reap(max_attempts=1)
    assert [t.token_id for t in reaped] == [1]
    assert reaped[0].status is TokenStatus.FAILED
    assert reaped[0].error_data == {
        "reason": "max_attempts",
        "stage": "generation",
        "attempts": 1,
        "last_worker": "w",
        "reaped": True,
    }


def test_retry_sends_a_failed_token_back_to_detected_with_fresh_attempts(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 2)
    claim(uow_factory, limit=1, worker="w")
    with uow_factory() as uow:
        uow.tokens.transition(1, TokenStatus.FAILED, error={"reason": "gpu on fire"})
    with pytest.raises(Conflict, match="not failed: 2"), uow_factory() as uow:
        uow.tokens.retry([1, 2])
    with uow_factory() as uow:
        [retried] = uow.tokens.retry([1])
    assert retried.status is TokenStatus.DETECTED
    assert retried.attempts == 0
    assert retried.claimed_by is None
    assert [t.token_id for t in claim(uow_factory, limit=1, worker="w2")] == [1]


def test_retry_resumes_a_token_the_upload_claim_failed_at_upload_with_its_image_kept(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 1)
    [held] = claim(uow_factory)
    with uow_factory() as uow:
        uow.tokens.advance([(held, {"image_path": "images/1.png"})])
    claim(uow_factory, stage="upload")
    expire_leases(session_factory)
    # The next upload claim finds the attempt used up and fails the token itself.
    assert claim(uow_factory, stage="upload", max_attempts=1) == []
    with uow_factory() as uow:
        [retried] = uow.tokens.retry([1])
    assert (retried.status, retried.image_path, retried.attempts) == (
        TokenStatus.UPLOADING,
        "images/1.png",
        0,
    )
    assert (retried.lease_expires_at, retried.claimed_by) == (None, None)
    assert claim(uow_factory, stage="generation") == []
    assert [t.token_id for t in claim(uow_factory, stage="upload")] == [1]


def test_release_returns_tokens_to_the_queue_but_only_for_their_holder(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 2)
    claim(uow_factory, limit=2, worker="owner")
    with pytest.raises(Conflict), uow_factory() as uow:
        uow.tokens.release_by_token_id([1, 2], worker="intruder")
    with uow_factory() as uow:
        released = uow.tokens.release_by_token_id([1], worker="owner")
    assert released[0].status is TokenStatus.DETECTED
    assert released[0].claimed_by is None
    assert [t.token_id for t in claim(uow_factory, limit=2, worker="next")] == [1]


def test_each_stage_claims_only_its_own_status(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 2, status="uploading")
    seed_tokens(session_factory, 2, status="ready", first_id=3)
    assert [t.token_id for t in claim(uow_factory, stage="upload")] == [1, 2]
    assert [t.token_id for t in claim(uow_factory, stage="reveal")] == [3, 4]
    assert claim(uow_factory, stage="generation") == []
    with uow_factory() as uow:
        statuses = Counter(t.status for t in uow.tokens.get_by_status(TokenStatus.UPLOADING))
    assert statuses == {TokenStatus.UPLOADING: 2}


@pytest.mark.parametrize(
    ("limit", "stage"), [(0, "generation"), (1001, "generation"), (10, "minting")]
)
def test_claim_rejects_bad_arguments(uow_factory, limit: int, stage: str) -> None:
    with pytest.raises(InvalidInput), uow_factory() as uow:
        uow.tokens.claim(stage, limit, "w", LEASE)


def test_eight_concurrent_workers_drain_ten_thousand_tokens_each_claimed_exactly_once(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 10_000)
    claimed: list[list[int]] = [[] for _ in range(8)]

    def worker(index: int) -> None:
        while True:
            with uow_factory() as uow:
                batch = uow.tokens.claim("generation", 50, f"w{index}", LEASE)
            if not batch:
                return
            claimed[index].extend(t.token_id for t in batch)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    everything = [token_id for batch in claimed for token_id in batch]
    assert len(everything) == 10_000, f"{time.monotonic() - started:.1f}s"
    assert len(set(everything)) == 10_000
    assert sum(1 for batch in claimed if batch) >= 2  # the work really was shared


def test_expired_leases_are_taken_over_first_and_the_batch_comes_back_in_mint_order(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 8)
    claim(uow_factory, limit=2, worker="first")  # tokens 1, 2
    _lease_to_the_dead(session_factory, {5: 3, 6: 2, 7: 1})  # 5 ran out longest ago

    batch = claim(uow_factory, limit=4, worker="rescuer")

    # The three orphaned tokens, then the oldest free one; tokens 1, 2 are held by a live lease.
    assert [t.token_id for t in batch] == [3, 5, 6, 7]
    assert {t.token_id: t.attempts for t in batch} == {3: 1, 5: 2, 6: 2, 7: 2}
    assert [t.token_id for t in claim(uow_factory, limit=1, worker="rescuer")] == [4]


def test_a_claim_locks_only_the_tokens_it_takes(session_factory, uow_factory) -> None:
    # A claim that locked more rows than it picked would make concurrent claims skip free
    # tokens it never hands out (and hold them for a get_pending_* caller's whole transaction).
    seed_tokens(session_factory, 8)
    _lease_to_the_dead(session_factory, {1: 4, 2: 3, 3: 2, 4: 1})
    with session_factory() as holding:
        taken = [t.token_id for t in TokenRepository(holding).claim("generation", 2, "a", LEASE)]
        pending = [t.token_id for t in TokenRepository(holding).get_pending_for_generation(1)]
        others = [t.token_id for t in claim(uow_factory, limit=10, worker="b")]
        holding.rollback()

    assert taken == [1, 2]
    assert pending == [3]
    assert others == [4, 5, 6, 7, 8]


def test_a_generating_token_nobody_holds_is_claimed_for_generation(
    session_factory, uow_factory
) -> None:
    # `glisk tokens mark N generating` moves a token without leasing it; it must not be stranded.
    seed_tokens(session_factory, 2)
    with uow_factory() as uow:
        uow.tokens.transition(2, TokenStatus.GENERATING)

    batch = claim(uow_factory, limit=10, worker="w")

    assert [(t.token_id, t.status) for t in batch] == [
        (1, TokenStatus.GENERATING),
        (2, TokenStatus.GENERATING),
    ]


def _lease_to_the_dead(session_factory, minutes_expired: dict[int, int]) -> None:
    """Give tokens an expired lease, as a worker that died holding them would leave them."""
    with session_factory() as session, session.begin():
        for token_id, minutes in minutes_expired.items():
            session.execute(
                text(
                    "UPDATE tokens_s0 SET status = 'generating', claimed_by = 'dead', "
                    "attempts = 1, lease_expires_at = now() - make_interval(mins => :minutes) "
                    "WHERE token_id = :token_id"
                ),
                {"minutes": minutes, "token_id": token_id},
            )


def test_a_worker_s_repeated_claims_run_one_generic_plan(database, session_factory) -> None:
    seed_tokens(session_factory, 100)
    uow_factory = create_uow_factory(database)
    # psycopg prepares a statement once it ran 5 times; PostgreSQL then plans it anew 5 times
    # before it weighs the generic plan.
    for _ in range(15):
        claim(uow_factory, limit=2)
    with uow_factory() as uow:  # the same kept connection, so the same prepared statements
        [(generic, custom)] = uow.transaction.rows(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE '%%glisk_pick%%'",
            {},
        )
    # No parameter shapes the claim's plan (its limit is written in), so PostgreSQL stops
    # planning each claim once it has seen that the generic plan is no worse.
    assert generic >= 1
    assert custom <= 5


def test_claim_is_served_by_an_index_not_a_table_scan(session_factory) -> None:
    seed_tokens(session_factory, 100_000, status="revealed")
    seed_tokens(session_factory, 20_000, first_id=200_001)
    with session_factory() as session:
        session.execute(text("ANALYZE tokens_s0"))
        session.commit()
        for stage in ("generation", "upload", "reveal"):
            plan = _claim_plan(session, stage)
            assert "Seq Scan" not in json.dumps(plan), (stage, plan)


@pytest.mark.parametrize("analyzed", [False, True], ids=["stale-statistics", "analyzed"])
@pytest.mark.parametrize("leases", ["live", "expired"])
@pytest.mark.parametrize(("stage", "status"), [("generation", "detected"), ("upload", "uploading")])
def test_a_claim_reads_only_the_tokens_it_takes(
    session_factory, uow_factory, analyzed: bool, leases: str, stage: str, status: str
) -> None:
    # Draining a backlog must not slow down as it goes: a claim that walked past every token
    # claimed before it (and still leased) made a drain quadratic, and so would one that sorted
    # every expired lease after a crash of many workers. With or without fresh planner
    # statistics, a claim reads only the tokens it takes.
    seed_tokens(session_factory, 10_000, status="revealed", first_id=100_001)  # history
    seed_tokens(session_factory, 1_500, status=status)
    for _ in range(12):
        claim(uow_factory, stage, limit=100, worker="busy")
    if leases == "expired":
        expire_leases(session_factory)
    if analyzed:
        with session_factory() as session:
            session.execute(text("ANALYZE tokens_s0"))
            session.commit()
    with uow_factory() as uow:
        before = index_reads(uow.session, fetched=True)
        taken = uow.tokens.claim(stage, 10, "w1", LEASE)
        reads = index_reads(uow.session, fetched=True) - before

    assert len(taken) == 10
    assert reads["seq_scan"] == 0, reads
    queue = sum(count for index, count in reads.items() if index.endswith("_queue"))
    expiry = reads["ix_tokens_s0_lease_expiry"]
    # Nothing read is thrown away: the rows fetched through the indexes are the rows taken.
    if leases == "live":  # the queue of free tokens, read no further than needed
        assert (queue, expiry) == (10, 0), reads
    else:  # the expired leases, and no further
        assert (queue, expiry) == (0, 10), reads


def _claim_plan(session, stage: str) -> dict:
    """PostgreSQL's plan for the claim the library sends (the sources inside glisk_pick show as
    one function scan)."""
    parameters = {
        "worker": "explain",
        "lease": LEASE,
        "max_attempts": 5,
        "lease_ids": array_literal(uuid.uuid4() for _ in range(10)),
    }
    sql = f"EXPLAIN (FORMAT JSON) {claim_sql(stage_named(stage), 10)}"
    explain = session.connection().exec_driver_sql(sql, parameters)
    plan = explain.scalar_one()[0]["Plan"]
    session.rollback()
    return plan
