"""Fenced leases: renewal, batch moves and releases act only for the lease a claim wrote; retry
delays keep a released token back; tokens that used up their attempts never cost a claim its
batch."""

import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import text

from glisk_cli.pipeline import TokenStatus
from glisk_cli.policy import QueuePolicy
from glisk_cli.uow import UnitOfWork
from tests.conftest import expire_leases, seed_tokens

SHORT = timedelta(seconds=1)
LONG = timedelta(minutes=15)


def _claimed_and_lapsed(session_factory, uow_factory, tokens: int, worker: str):
    """`tokens` new tokens, claimed by `worker`, whose lease has run out since."""
    seed_tokens(session_factory, tokens)
    with uow_factory() as uow:
        claimed = uow.tokens.claim("generation", tokens, worker, SHORT)
    expire_leases(session_factory)
    return claimed


def test_a_batch_claim_writes_one_new_lease_id_for_its_whole_batch(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 4)
    with uow_factory() as uow:
        first = uow.tokens.claim("generation", 2, "w", LONG, job_size=2)
    with uow_factory() as uow:
        second = uow.tokens.claim("generation", 2, "w", LONG, job_size=2)
    assert len({token.lease_id for token in first}) == 1
    assert len({token.lease_id for token in second}) == 1
    assert first[0].lease_id != second[0].lease_id


def test_a_claim_of_single_jobs_gives_each_token_its_own_lease_id(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 5)
    with uow_factory() as uow:
        pairs = uow.tokens.claim("generation", 5, "w", LONG, job_size=2)
    with uow_factory() as uow:
        uow.tokens.release(pairs)
    with uow_factory() as uow:
        singles = uow.tokens.claim("generation", 5, "w", LONG, job_size=1)
    assert sorted(Counter(token.lease_id for token in pairs).values()) == [1, 2, 2]
    assert len({token.lease_id for token in singles}) == 5


def test_a_move_that_waited_for_a_takeover_to_commit_reports_the_lease_lost(
    session_factory, uow_factory
) -> None:
    [stale] = _claimed_and_lapsed(session_factory, uow_factory, 1, "w1")
    outcome: list = []
    with uow_factory() as takeover:
        takeover.tokens.claim("generation", 1, "w2", LONG)  # locks the row until it commits
        # The stale worker's move starts now, so its snapshot still shows its own lease; it
        # waits for the row, and finds it taken over once the claim commits.
        mover = threading.Thread(target=lambda: outcome.append(_advance(uow_factory, stale)))
        mover.start()
        _wait_for_a_lock_wait(session_factory)
    mover.join(timeout=30)
    [result] = outcome
    assert result.moved == []
    assert result.refused == {1: "lease_lost"}


def _advance(uow_factory, token):
    with uow_factory() as uow:
        return uow.tokens.advance([(token, {"image_path": "stale.png"})])


def _wait_for_a_lock_wait(session_factory, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_factory() as admin:
            waiting = admin.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the move never waited for the row")


def test_a_worker_whose_tokens_were_reclaimed_is_refused_even_under_the_same_name(
    session_factory, uow_factory
) -> None:
    stale = _claimed_and_lapsed(session_factory, uow_factory, 2, "w1")
    with uow_factory() as uow:
        fresh = uow.tokens.claim("generation", 2, "w1", LONG)  # a restarted w1, same name
    assert [t.token_id for t in fresh] == [1, 2]

    with uow_factory() as uow:
        assert uow.tokens.renew(stale, LONG) == []
        moved = uow.tokens.advance([(t, {"image_path": "stale.png"}) for t in stale])
        released = uow.tokens.release(stale, retry_in=timedelta(0))
    assert moved.moved == []
    assert moved.refused == {1: "lease_lost", 2: "lease_lost"}
    assert released.moved == []
    assert released.refused == {1: "lease_lost", 2: "lease_lost"}

    with uow_factory() as uow:
        result = uow.tokens.advance([(t, {"image_path": f"{t.token_id}.png"}) for t in fresh])
        tokens = [uow.tokens.require(n) for n in (1, 2)]
    assert result.moved == [1, 2]
    assert [(t.status, t.image_path) for t in tokens] == [
        (TokenStatus.UPLOADING, "1.png"),
        (TokenStatus.UPLOADING, "2.png"),
    ]


def test_renewing_every_third_of_the_lease_keeps_the_token_for_three_leases(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 1)
    with uow_factory() as uow:
        held = uow.tokens.claim("generation", 1, "keeper", SHORT)
    deadline = time.monotonic() + 3 * SHORT.total_seconds()
    while time.monotonic() < deadline:
        time.sleep(SHORT.total_seconds() / 3)
        with uow_factory() as uow:
            held = uow.tokens.renew(held, SHORT)
        assert len(held) == 1
        with uow_factory() as uow:
            assert uow.tokens.claim("generation", 1, "thief", SHORT) == []
    with uow_factory() as uow:
        assert uow.tokens.advance([(held[0], {"image_path": "kept.png"})]).moved == [1]


def test_a_lapsed_lease_nobody_took_over_can_still_be_renewed_and_advanced(
    session_factory, uow_factory
) -> None:
    [token] = _claimed_and_lapsed(session_factory, uow_factory, 1, "slow")
    with uow_factory() as uow:
        [renewed] = uow.tokens.renew([token], LONG)
    assert renewed.lease_expires_at is not None
    assert token.lease_expires_at is not None
    assert renewed.lease_expires_at > token.lease_expires_at
    expire_leases(session_factory)
    with uow_factory() as uow:
        assert uow.tokens.advance([(renewed, {"image_path": "late.png"})]).moved == [1]


def test_a_mixed_batch_moves_exactly_the_valid_tokens_and_reports_the_rest(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 5)
    with uow_factory() as uow:
        claimed = uow.tokens.claim("generation", 5, "w1", SHORT)
    held, reclaimed, failed_by_operator, incomplete, not_in_flight = claimed
    with session_factory() as session, session.begin():
        session.execute(
            text(
                "UPDATE tokens_s0 SET lease_expires_at = now() - interval '1 second' "
                "WHERE token_id = 2"
            )
        )
    with uow_factory() as uow:
        assert [t.token_id for t in uow.tokens.claim("generation", 5, "w2", LONG)] == [2]
        uow.tokens.transition(3, TokenStatus.FAILED, error={"reason": "operator"})

    with uow_factory() as uow:
        result = uow.tokens.advance(
            [
                (held, {"image_path": "1.png"}),
                (reclaimed, {"image_path": "2.png"}),
                (failed_by_operator, {"image_path": "3.png"}),
                (incomplete, {"image_path": ""}),
                # A record that is not a claimed token's: no stage moves a detected token on.
                (replace(not_in_flight, status=TokenStatus.DETECTED), {"image_path": "5.png"}),
            ]
        )
    assert result.moved == [1]
    assert result.refused == {
        2: "lease_lost",  # another claim took it over
        3: "lease_lost",  # the operator's move ended the lease
        4: "missing_field",
        5: "illegal_transition",
    }
    with uow_factory() as uow:
        statuses = [uow.tokens.require(n).status for n in (1, 2, 3, 4, 5)]
    assert statuses == [
        TokenStatus.UPLOADING,
        TokenStatus.GENERATING,
        TokenStatus.FAILED,
        TokenStatus.GENERATING,
        TokenStatus.GENERATING,
    ]


def test_a_stale_worker_is_told_it_lost_the_lease_after_the_new_holder_moved_the_token(
    session_factory, uow_factory
) -> None:
    stale = _claimed_and_lapsed(session_factory, uow_factory, 1, "w1")
    with uow_factory() as uow:
        fresh = uow.tokens.claim("generation", 1, "w2", LONG)
        assert uow.tokens.advance([(fresh[0], {"image_path": "w2.png"})]).moved == [1]
    with uow_factory() as uow:
        assert uow.tokens.advance([(stale[0], {"image_path": "w1.png"})]).refused == {
            1: "lease_lost"
        }


def test_advance_follows_the_vocabulary_through_every_stage(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 1)
    stages = [
        ("generation", {"image_path": "i.png"}, TokenStatus.UPLOADING),
        ("upload", {"image_cid": "bafy-i", "metadata_cid": "bafy-m"}, TokenStatus.READY),
        ("reveal", {"tx_hash": "0x" + "ab" * 32}, TokenStatus.REVEALED),
    ]
    for stage, fields, expected in stages:
        with uow_factory() as uow:
            [token] = uow.tokens.claim(stage, 1, "w", LONG)
            assert uow.tokens.advance([(token, fields)]).moved == [1]
            stored = uow.tokens.require(1)
        assert stored.status is expected
        assert (stored.claimed_by, stored.lease_id, stored.lease_expires_at) == (None, None, None)
        # A new stage starts a new count of attempts; the finished token keeps its last.
        assert stored.attempts == (1 if expected is TokenStatus.REVEALED else 0)
    assert (stored.image_path, stored.image_cid, stored.metadata_cid) == (
        "i.png",
        "bafy-i",
        "bafy-m",
    )
    assert stored.reveal_tx_hash == "0x" + "ab" * 32


def test_an_empty_batch_is_a_no_op(uow_factory) -> None:
    with uow_factory() as uow:
        assert uow.tokens.renew([], LONG) == []
        assert uow.tokens.advance([]).moved == []
        assert uow.tokens.release([]).moved == []


def test_a_released_token_with_a_retry_delay_is_claimable_only_after_it(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 2)
    with uow_factory() as uow:
        claimed = uow.tokens.claim("generation", 1, "w1", LONG)
    with uow_factory() as uow:
        result = uow.tokens.release(claimed, error={"message": "boom"}, retry_in=SHORT)
    assert result.moved == [1]
    with uow_factory() as uow:
        # Token 1 waits out its delay; token 2 is free.
        assert [t.token_id for t in uow.tokens.claim("generation", 2, "w2", LONG)] == [2]
        stored = uow.tokens.require(1)
    assert stored.status is TokenStatus.DETECTED
    assert stored.error_data == {"message": "boom", "attempt": 1}
    time.sleep(SHORT.total_seconds() + 0.1)
    with uow_factory() as uow:
        [retried] = uow.tokens.claim("generation", 2, "w3", LONG)
    assert (retried.token_id, retried.attempts, retried.claimed_by) == (1, 2, "w3")


def test_a_failed_attempt_backs_off_exponentially_from_the_policy(session_factory) -> None:
    policy = QueuePolicy(retry_base=timedelta(seconds=10), retry_max=timedelta(seconds=30))
    seed_tokens(session_factory, 1)
    delays = []
    for attempt in (1, 2, 3):
        with session_factory() as session, session.begin():
            session.execute(text("UPDATE tokens_s0 SET lease_expires_at = NULL"))
        with UnitOfWork(session_factory, policy) as uow:
            [token] = uow.tokens.claim("generation", 1, "w", LONG)
            assert token.attempts == attempt
            uow.tokens.release([token], error={"message": "again"})
            delays.append(
                uow.session.execute(
                    text("SELECT lease_expires_at - statement_timestamp() FROM tokens_s0")
                ).scalar_one()
            )
    # Equal jitter: between half and all of 10 s, 20 s, then the 30 s cap.
    for delay, full in zip(delays, (10, 20, 30), strict=True):
        assert timedelta(seconds=full / 2 - 1) <= delay <= timedelta(seconds=full)


def test_a_failed_attempt_that_used_up_the_attempts_fails_the_token_at_once(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 1)
    with session_factory() as session, session.begin():
        session.execute(text("UPDATE tokens_s0 SET attempts = 4"))
    with uow_factory() as uow:
        [token] = uow.tokens.claim("generation", 1, "w", LONG, max_attempts=5)
        uow.tokens.release([token], error={"message": "fifth failure"})
        stored = uow.tokens.require(1)
    assert stored.status is TokenStatus.FAILED
    assert stored.lease_expires_at is None
    assert stored.error_data is not None
    assert stored.error_data["reason"] == "max_attempts"
    assert stored.error_data["stage"] == "generation"  # where it failed: retry sends it there
    assert stored.error_data["message"] == "fifth failure"


def test_tokens_that_used_up_their_attempts_do_not_cost_a_claim_its_batch(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 6)
    # Tokens 1-3 came back from dead workers with their attempts used up.
    with session_factory() as session, session.begin():
        session.execute(
            text(
                "UPDATE tokens_s0 SET status = 'generating', attempts = 5, claimed_by = 'dead', "
                "lease_expires_at = now() - interval '1 second' WHERE token_id <= 3"
            )
        )
    with uow_factory() as uow:
        claimed = uow.tokens.claim("generation", 3, "w", LONG, max_attempts=5)
        failed = uow.tokens.get_by_status(TokenStatus.FAILED)
    assert [t.token_id for t in claimed] == [4, 5, 6]
    assert [t.token_id for t in failed] == [1, 2, 3]
