"""`glisk tokens why TOKEN_ID`: each reason a token is not moving, end to end (in-process, real
PostgreSQL) — done, failed, held, lease ran out, retry delay, the stage paused, cooling down, at
its concurrency limit or rate-limited, or next in line behind the tokens a claim takes first —
as one sentence on stdout, or one JSON object with --json."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from glisk_cli.flow import Rate
from glisk_cli.pipeline import STAGES, StageName
from glisk_cli.repositories.token_why import ahead_sql
from tests.cli.outputs import moment
from tests.conftest import expire_leases, seed_tokens
from tests.plans import plan_nodes

LEASE = timedelta(minutes=5)
KEYS = ["token_id", "status", "reason", "message", "until"]


@pytest.fixture
def why(glisk):
    """`glisk tokens why TOKEN_ID --json`, as a dict."""

    def run(token_id: int) -> dict[str, Any]:
        answer = json.loads(glisk("tokens", "why", str(token_id), "--json").stdout)
        assert list(answer)[: len(KEYS)] == KEYS
        assert answer["token_id"] == token_id
        return answer

    return run


def claim(uow_factory, limit: int = 1, worker: str = "w1", stage: str = "generation", **options):
    with uow_factory() as uow:
        return uow.tokens.claim(stage, limit, worker, LEASE, **options)


def test_an_unknown_token_is_exit_5_like_tokens_show(glisk) -> None:
    result = glisk("tokens", "why", "404", expect=5)
    assert result.stdout == ""
    assert result.stderr == "error: token 404 not found\n"
    as_json = glisk("tokens", "why", "404", "--json", expect=5)
    assert json.loads(as_json.stderr)["error"]["code"] == "not_found"


def test_the_human_answer_is_one_sentence_on_stdout(glisk, session_factory) -> None:
    seed_tokens(session_factory, 3)
    result = glisk("tokens", "why", "3")
    assert result.stdout == "token 3 is next in line for generation behind 2 older tokens\n"
    assert result.stderr == ""


def test_a_revealed_token_is_done(why, session_factory) -> None:
    seed_tokens(session_factory, 1, status="revealed")
    answer = why(1)
    assert (answer["status"], answer["reason"], answer["until"]) == ("revealed", "done", None)


def test_a_failed_token_says_why_it_failed(why, session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 1)
    with uow_factory() as uow:
        uow.tokens.release(claim(uow_factory), retry_in=timedelta(0))
    claim(uow_factory, max_attempts=1)  # its one attempt is used: the claim fails it instead
    answer = why(1)
    assert (answer["status"], answer["reason"], answer["failure"]) == (
        "failed",
        "failed",
        "max_attempts",
    )
    assert answer["error_data"]["stage"] == "generation"
    assert "token 1 failed in generation (max_attempts, after 1 attempt)" in answer["message"]
    assert "glisk tokens retry 1" in answer["message"]


def test_a_claimed_token_is_held_by_its_worker_until_its_lease_ends(
    why, session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 2)
    [held] = claim(uow_factory, worker="gpu-7")
    answer = why(1)
    assert answer["reason"] == "held"
    assert answer["claimed_by"] == "gpu-7"
    assert answer["lease_id"] == str(held.lease_id)
    assert held.lease_expires_at is not None
    assert moment(answer["until"]) == moment(answer["lease_expires_at"]) == held.lease_expires_at
    assert answer["message"].startswith("token 1 is held by worker gpu-7 for generation until ")
    assert "last renewed" in answer["message"]


def test_a_lease_that_ran_out_is_taken_over_by_the_next_claim(
    why, session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 2)
    claim(uow_factory, worker="gpu-7")
    expire_leases(session_factory)
    answer = why(1)
    assert (answer["reason"], answer["until"], answer["blocked"]) == ("lease_expired", None, None)
    assert answer["claimed_by"] == "gpu-7"
    assert "the next claim of generation takes it over" in answer["message"]


def test_a_lease_that_ran_out_in_a_paused_stage_says_both(
    glisk, why, session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 2)
    claim(uow_factory, worker="gpu-7")
    expire_leases(session_factory)
    glisk("stage", "pause", "generation", "--reason", "GPU maintenance", "--until", "1h")
    answer = why(1)
    assert answer["reason"] == "lease_expired"
    assert answer["blocked"]["reason"] == "paused"
    assert moment(answer["until"]) == moment(answer["blocked"]["until"])
    assert "takes it over, but stage generation is paused" in answer["message"]
    assert "GPU maintenance" in answer["message"]


def test_a_released_token_waits_out_its_retry_delay(why, session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 1)
    with uow_factory() as uow:
        uow.tokens.release(
            claim(uow_factory), error={"message": "HTTP 503"}, retry_in=timedelta(minutes=5)
        )
    answer = why(1)
    assert (answer["status"], answer["reason"]) == ("detected", "retry_delay")
    left = moment(answer["until"]) - datetime.now(UTC)
    assert timedelta(minutes=4) < left <= timedelta(minutes=5)
    assert "after attempt 1 failed (HTTP 503)" in answer["message"]


def test_a_paused_stage_holds_its_queue(glisk, why, session_factory) -> None:
    seed_tokens(session_factory, 3)
    glisk("stage", "pause", "generation", "--reason", "GPU maintenance", "--until", "1h")
    answer = why(3)
    assert (answer["reason"], answer["stage"], answer["ahead"]) == ("paused", "generation", 2)
    left = moment(answer["until"]) - datetime.now(UTC)
    assert timedelta(minutes=59) < left <= timedelta(hours=1)
    assert answer["message"].startswith("token 3 waits in the generation queue, and stage ")
    assert "GPU maintenance" in answer["message"]
    glisk("stage", "resume", "generation")
    assert why(3)["reason"] == "queued"


def test_a_cooling_stage_holds_its_queue_until_the_cooldown_ends(
    why, session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 1, status="uploading")
    with uow_factory() as uow:
        uow.stages.cool_down("upload", timedelta(seconds=30), reason="429 from the pinning API")
    answer = why(1)
    assert (answer["reason"], answer["stage"]) == ("cooling_down", "upload")
    left = moment(answer["until"]) - datetime.now(UTC)
    assert timedelta(seconds=25) < left <= timedelta(seconds=30)
    assert "429 from the pinning API" in answer["message"]


def test_a_stage_at_its_concurrency_limit_names_who_runs_its_jobs(
    why, session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 2, status="ready")
    with uow_factory() as uow:
        uow.stages.limit("reveal", concurrency=1)
    claim(uow_factory, worker="signer", stage="reveal")
    answer = why(2)
    assert (answer["reason"], answer["stage"], answer["until"]) == ("at_limit", "reveal", None)
    assert "(1 of 1 jobs running, by signer)" in answer["message"]


def test_a_rate_limited_stage_says_when_its_next_start_is(
    why, session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 2)
    with uow_factory() as uow:
        uow.stages.limit("generation", rate=Rate(1, 60))
    claim(uow_factory)  # the bucket held one start
    answer = why(2)
    assert answer["reason"] == "rate_limited"
    left = moment(answer["until"]) - datetime.now(UTC)
    assert timedelta(seconds=50) < left <= timedelta(seconds=60)


def test_a_queued_token_is_behind_the_expired_leases_then_the_older_mints(
    glisk, why, session_factory, uow_factory
) -> None:
    # Tokens 1 and 2 were claimed and their leases ran out; 2 was then released with no delay,
    # so it is due again after 1. A claim takes 1 and 2 (lapsed leases first), then 3, 4, ….
    seed_tokens(session_factory, 6)
    held = claim(uow_factory, 2)
    expire_leases(session_factory)
    with uow_factory() as uow:
        uow.tokens.release(held[1:], retry_in=timedelta(0))
    assert why(1)["reason"] == "lease_expired"
    assert [(why(n)["reason"], why(n)["ahead"]) for n in (2, 3, 4)] == [
        ("queued", 1),
        ("queued", 2),
        ("queued", 3),
    ]
    assert why(4)["ahead_exact"] is True
    assert [token.token_id for token in claim(uow_factory, 3)] == [1, 2, 3]
    answer = why(4)
    assert answer["ahead"] == 0
    assert answer["message"] == "token 4 is next in line for generation: the next claim takes it"
    assert glisk("tokens", "why", "6").stdout == (
        "token 6 is next in line for generation behind 2 older tokens\n"
    )


@pytest.mark.parametrize(
    ("status", "stage", "due"),
    [("detected", "generation", False), ("ready", "reveal", True)],
    ids=["free-generation", "due-reveal"],
)
def test_the_counts_ahead_read_only_the_claim_s_indexes_of_what_is_ahead(
    session_factory, status: str, stage: str, due: bool
) -> None:
    # Cheap deep in a backlog: each count reads the index the claim reads, bounded at the token
    # asked about, never the stage's whole status.
    seed_tokens(session_factory, 10_000, status=status)
    seed_tokens(session_factory, 10_000, status="revealed", first_id=100_001)
    engine = session_factory.kw["bind"]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
    params = {
        "token_id": 10,
        "mint": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=10),  # as seed_tokens mints
        "expires": datetime.now(UTC) if due else None,
    }
    sql = ahead_sql(STAGES[StageName(stage)], due=due)
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        [([plan],)] = cursor.fetchall()
    scans = [node for node in plan_nodes(plan["Plan"]) if "Relation Name" in node]
    assert {node["Index Name"] for node in scans} <= {
        "ix_tokens_s0_lease_expiry",
        "ix_tokens_s0_generation_queue",
        "ix_tokens_s0_upload_reveal_queue",
    }, scans
    # nothing read only to be thrown away, but the token itself, where ties of its mint are read
    assert sum(node.get("Rows Removed by Filter", 0) for node in scans) <= 1, scans
