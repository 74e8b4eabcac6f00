"""Why a token is not moving, decided from plain values (`glisk_cli.why`): each reason, the order
they are checked in, and the sentence and JSON document each gives."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from glisk_cli.flow import Rate, StageState
from glisk_cli.pipeline import StageName, TokenStatus
from glisk_cli.why import Ahead, TokenFacts, explain, failure_reason, last_renewal, waits_for

NOW = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
LEASE = timedelta(minutes=15)
LEASE_ID = uuid.UUID("00000000-0000-0000-0000-0000000000a1")


def token(**changes: Any) -> TokenFacts:
    """Token 7, detected, held by nobody, read at NOW."""
    facts = TokenFacts(
        token_id=7,
        status=TokenStatus.DETECTED,
        mint_timestamp=NOW - timedelta(hours=1),
        attempts=0,
        error_data=None,
        claimed_by=None,
        lease_id=None,
        lease_expires_at=None,
        updated_at=NOW - timedelta(hours=1),
        now=NOW,
    )
    return dataclasses.replace(facts, **changes)


def held(**changes: Any) -> TokenFacts:
    """Token 7 held by w1 for generation, claimed 5 minutes ago, 10 minutes left."""
    facts: dict[str, Any] = {
        "status": TokenStatus.GENERATING,
        "attempts": 1,
        "claimed_by": "w1",
        "lease_id": LEASE_ID,
        "lease_expires_at": NOW + timedelta(minutes=10),
        "updated_at": NOW - timedelta(minutes=5),
    }
    return token(**facts | changes)


def stage(name: str = "generation", **changes: Any) -> StageState:
    """A stage with no controls, nothing running, read at NOW."""
    state = StageState(
        stage=name,
        now=NOW,
        paused_at=None,
        pause_reason=None,
        paused_until=None,
        concurrency=None,
        running=0,
        holders=(),
        rate=None,
        burst=1,
        bucket=None,
        cooldown_until=None,
        cooldown_reason=None,
    )
    return dataclasses.replace(state, **changes)


def test_a_revealed_token_is_done() -> None:
    answer = explain(token(status=TokenStatus.REVEALED), lease=LEASE)
    assert (answer.reason, answer.until) == ("done", None)
    assert answer.message == "token 7 is done: it was revealed"
    assert waits_for(token(status=TokenStatus.REVEALED)) is None


def test_a_failed_token_says_why_from_its_error_data_and_how_to_retry_it() -> None:
    error = {"reason": "max_attempts", "stage": "upload", "attempts": 5, "last_worker": "w2"}
    answer = explain(token(status=TokenStatus.FAILED, attempts=5, error_data=error), lease=LEASE)
    assert answer.reason == "failed"
    assert answer.message == (
        "token 7 failed in upload (max_attempts, after 5 attempts); "
        "`glisk tokens retry 7` sends it back to the stage that failed"
    )
    document = answer.document()
    assert (document["failure"], document["error_data"]) == ("max_attempts", error)


def test_a_failure_message_is_one_line_with_passwords_masked() -> None:
    error = {"reason": "exit", "message": "cannot reach\npostgresql://u:hunter2@db/x"}
    answer = explain(token(status=TokenStatus.FAILED, attempts=1, error_data=error), lease=LEASE)
    assert "cannot reach postgresql://u:***@db/x" in answer.message
    assert "hunter2" not in answer.message
    assert "\n" not in answer.message


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ({"reason": "max_attempts"}, "max_attempts"),
        ({"code": "timeout"}, "timeout"),
        ({"exit_status": 3}, "exit 3"),
        ({"message": "?"}, "unknown"),
        (None, "unknown"),
    ],
)
def test_a_failure_reason_is_one_word_as_top_counts_it(error: Any, reason: str) -> None:
    assert failure_reason(error) == reason


def test_a_token_under_a_live_lease_is_held_by_its_worker_until_the_lease_ends() -> None:
    facts = held()
    answer = explain(facts, lease=LEASE)
    assert waits_for(facts) is None  # a held token needs no stage controls
    assert (answer.reason, answer.until) == ("held", NOW + timedelta(minutes=10))
    assert answer.message == (
        "token 7 is held by worker w1 for generation until 2026-12-06T18:10:00Z "
        "(in 10m 00s, last renewed 5m 00s ago)"
    )
    document = answer.document()
    assert list(document)[:5] == ["token_id", "status", "reason", "message", "until"]
    assert document["claimed_by"] == "w1"
    assert document["lease_id"] == LEASE_ID
    assert document["lease_expires_at"] == NOW + timedelta(minutes=10)
    assert document["last_renewal"] == NOW - timedelta(minutes=5)


def test_a_held_token_is_held_whatever_its_stage_says() -> None:
    # Pause stops new starts; the worker holding the token goes on.
    paused = stage(paused_at=NOW - timedelta(minutes=1))
    assert explain(held(), lease=LEASE, stage=paused).reason == "held"


def test_a_lease_that_ran_out_is_taken_over_by_the_next_claim() -> None:
    facts = held(lease_expires_at=NOW - timedelta(seconds=30))
    assert waits_for(facts) is not None
    answer = explain(facts, lease=LEASE, stage=stage())
    assert (answer.reason, answer.until) == ("lease_expired", None)
    assert answer.message == (
        "token 7's lease (worker w1) ran out at 2026-12-06T17:59:30Z (30s ago): "
        "the next claim of generation takes it over"
    )
    assert answer.document()["blocked"] is None


def test_a_lease_that_ran_out_in_a_paused_stage_says_both() -> None:
    until = NOW + timedelta(hours=1)
    paused = stage(paused_at=NOW, pause_reason="GPU maintenance", paused_until=until)
    answer = explain(held(lease_expires_at=NOW - timedelta(seconds=1)), lease=LEASE, stage=paused)
    assert (answer.reason, answer.until) == ("lease_expired", until)
    assert "takes it over, but stage generation is paused" in answer.message
    assert "GPU maintenance" in answer.message
    assert answer.document()["blocked"]["reason"] == "paused"


def test_a_released_token_waits_out_its_retry_delay() -> None:
    facts = token(
        attempts=2,
        lease_expires_at=NOW + timedelta(seconds=40),
        error_data={"message": "HTTP 503", "attempt": 2},
    )
    assert waits_for(facts) is None
    answer = explain(facts, lease=LEASE)
    assert (answer.reason, answer.until) == ("retry_delay", NOW + timedelta(seconds=40))
    assert answer.message == (
        "token 7 is waiting out a retry delay after attempt 2 failed (HTTP 503): "
        "claimable again at 2026-12-06T18:00:40Z (in 40s)"
    )
    assert answer.document()["stage"] == "generation"


def test_a_retry_delay_that_is_over_puts_the_token_back_in_the_queue() -> None:
    facts = token(attempts=2, lease_expires_at=NOW - timedelta(seconds=1))
    assert waits_for(facts) is not None
    answer = explain(facts, lease=LEASE, stage=stage(), ahead=Ahead(0))
    assert answer.reason == "queued"


@pytest.mark.parametrize(
    ("controls", "reason", "until", "words"),
    [
        (
            {"paused_at": NOW, "pause_reason": "maintenance"},
            "paused",
            None,
            "stage generation is paused: maintenance",
        ),
        (
            {"cooldown_until": NOW + timedelta(seconds=30), "cooldown_reason": "429"},
            "cooling_down",
            NOW + timedelta(seconds=30),
            "cooling down until",
        ),
        (
            {"concurrency": 2, "running": 2, "holders": ("w1", "w2")},
            "at_limit",
            None,
            "(2 of 2 jobs running, by w1, w2)",
        ),
        (
            {"rate": Rate(4, 1), "bucket": 0.5},
            "rate_limited",
            NOW + timedelta(seconds=0.125),
            "rate-limited to 4/s",
        ),
    ],
)
def test_a_queued_token_of_a_stage_that_starts_no_job_says_what_holds_it(
    controls: dict[str, Any], reason: str, until: datetime | None, words: str
) -> None:
    answer = explain(token(), lease=LEASE, stage=stage(**controls), ahead=Ahead(3))
    assert (answer.reason, answer.until) == (reason, until)
    assert answer.message.startswith("token 7 waits in the generation queue, and stage ")
    assert words in answer.message
    document = answer.document()
    assert (document["stage"], document["ahead"]) == ("generation", 3)
    assert document["blocked"]["reason"] == reason


def test_a_pause_that_has_run_out_holds_nothing() -> None:
    over = stage(paused_at=NOW - timedelta(hours=1), paused_until=NOW - timedelta(seconds=1))
    assert explain(token(), lease=LEASE, stage=over, ahead=Ahead(0)).reason == "queued"


def test_a_queued_token_is_next_in_line_behind_the_older_ones() -> None:
    answer = explain(token(), lease=LEASE, stage=stage(), ahead=Ahead(12))
    assert (answer.reason, answer.until) == ("queued", None)
    assert answer.message == "token 7 is next in line for generation behind 12 older tokens"
    assert answer.document()["ahead_exact"] is True
    one = explain(token(), lease=LEASE, stage=stage(), ahead=Ahead(1))
    assert one.message == "token 7 is next in line for generation behind 1 older token"
    first = explain(token(), lease=LEASE, stage=stage(), ahead=Ahead(0))
    assert first.message == "token 7 is next in line for generation: the next claim takes it"
    deep = explain(token(), lease=LEASE, stage=stage(), ahead=Ahead(20_000, exact=False))
    assert "behind more than 20000 older tokens" in deep.message
    assert deep.document()["ahead_exact"] is False


def test_each_queue_waits_for_its_own_stage() -> None:
    for status, name in [
        (TokenStatus.DETECTED, StageName.GENERATION),
        (TokenStatus.UPLOADING, StageName.UPLOAD),
        (TokenStatus.READY, StageName.REVEAL),
    ]:
        found = waits_for(token(status=status))
        assert found is not None
        assert found.name is name
    answer = explain(
        token(status=TokenStatus.READY), lease=LEASE, stage=stage("reveal"), ahead=Ahead(0)
    )
    assert answer.message == "token 7 is next in line for reveal: the next claim takes it"


def test_a_queued_token_needs_its_own_stage_s_controls_and_the_count_ahead() -> None:
    with pytest.raises(ValueError, match="controls"):
        explain(token(), lease=LEASE)
    with pytest.raises(ValueError, match="controls"):
        explain(token(), lease=LEASE, stage=stage("upload"), ahead=Ahead(0))
    with pytest.raises(ValueError, match="ahead"):
        explain(token(), lease=LEASE, stage=stage())


def test_the_last_renewal_is_worked_out_from_the_expiry_and_bounded_by_the_claim() -> None:
    claimed = NOW - timedelta(minutes=10)
    # renewed for GLISK_LEASE two minutes ago
    renewed = NOW - timedelta(minutes=2)
    assert last_renewal(renewed + LEASE, claimed, LEASE, NOW) == renewed
    # a shorter lease would look older than its claim: the claim bounds it
    assert last_renewal(NOW + timedelta(seconds=30), claimed, LEASE, NOW) == claimed
    # a longer lease would look like a renewal to come: capped at now
    assert last_renewal(NOW + timedelta(hours=1), claimed, LEASE, NOW) == NOW
    assert last_renewal(None, claimed, LEASE, NOW) == claimed
