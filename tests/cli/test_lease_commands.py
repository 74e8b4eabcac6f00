"""`glisk tokens claim|renew|mark|release` with lease ids, end to end (in-process, real
PostgreSQL): the claim prints the lease id, the lease id renews, and once another claim took the
tokens over the old lease id is refused everywhere (exit 6) while the new one works.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.cli.outputs import as_json, assert_one_error_line, moment
from tests.conftest import expire_leases, seed_tokens


def claim(glisk, *args: str) -> list[dict[str, Any]]:
    return as_json(glisk("tokens", "claim", "--json", *args))


def test_claim_prints_one_lease_id_for_its_batch_and_renew_extends_that_lease(
    glisk, session_factory
) -> None:
    seed_tokens(session_factory, 3)
    claimed = claim(glisk, "--limit", "3", "--worker", "w1", "--lease", "30s")
    lease_ids = {token["lease_id"] for token in claimed}
    assert len(lease_ids) == 1
    [lease_id] = lease_ids
    assert str(uuid.UUID(lease_id)) == lease_id

    renewed = as_json(glisk("tokens", "renew", "--lease-id", lease_id, "--lease", "90s", "--json"))

    assert [token["token_id"] for token in renewed] == [1, 2, 3]
    assert {token["lease_id"] for token in renewed} == {lease_id}
    assert {token["claimed_by"] for token in renewed} == {"w1"}
    expiries = {t["token_id"]: moment(t["lease_expires_at"]) for t in claimed}
    for token in renewed:
        expires = moment(token["lease_expires_at"])
        assert expires > expiries[token["token_id"]]
        assert 85 <= (expires - datetime.now(UTC)).total_seconds() <= 95


@pytest.mark.parametrize("second_worker", ["w2", "w1"], ids=["another-worker", "same-name"])
def test_a_lease_taken_over_refuses_its_old_lease_id_and_honours_the_new_one(
    glisk, session_factory, second_worker: str
) -> None:
    seed_tokens(session_factory, 2)
    [old_id] = {token["lease_id"] for token in claim(glisk, "--worker", "w1")}
    expire_leases(session_factory)
    taken_over = claim(glisk, "--worker", second_worker)
    assert [token["token_id"] for token in taken_over] == [1, 2]
    [new_id] = {token["lease_id"] for token in taken_over}
    assert new_id != old_id
    before = as_json(glisk("tokens", "list", "--json"))

    stale = [
        glisk("tokens", "renew", "--lease-id", old_id, expect=6),
        glisk(
            "tokens", "mark", "1", "uploading", "--image-path", "p", "--lease-id", old_id, expect=6
        ),
        glisk("tokens", "release", "1", "--lease-id", old_id, expect=6),
        glisk("tokens", "release", "1", "2", "--lease-id", old_id, "--retry-in", "5m", expect=6),
    ]

    for result in stale:
        assert_one_error_line(result, old_id)
    assert as_json(glisk("tokens", "list", "--json")) == before  # nothing changed
    marked = as_json(
        glisk(
            "tokens", "mark", "1", "uploading", "--image-path", "p", "--lease-id", new_id, "--json"
        )
    )
    assert marked["status"] == "uploading"
    assert marked["image_path"] == "p"
    assert marked["lease_id"] is None
    # The rest of the batch is still held under the new lease: it renews, token 1 no longer.
    renewed = as_json(glisk("tokens", "renew", "--lease-id", new_id, "--json"))
    assert [token["token_id"] for token in renewed] == [2]


def test_an_unknown_lease_id_is_a_conflict_not_a_crash(glisk, session_factory) -> None:
    seed_tokens(session_factory, 1)
    claim(glisk, "--worker", "w1")
    unknown = str(uuid.uuid4())
    before = as_json(glisk("tokens", "show", "1", "--json"))

    results = [
        glisk("tokens", "renew", "--lease-id", unknown, expect=6),
        glisk(
            "tokens", "mark", "1", "uploading", "--image-path", "p", "--lease-id", unknown, expect=6
        ),
        glisk("tokens", "release", "1", "--lease-id", unknown, expect=6),
    ]

    for result in results:
        assert_one_error_line(result, unknown)
    assert as_json(glisk("tokens", "show", "1", "--json")) == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["tokens", "renew", "--lease-id", "nope"], "lease id"),
        (
            ["tokens", "mark", "1", "uploading", "--image-path", "p", "--lease-id", "nope"],
            "lease id",
        ),
        (["tokens", "release", "1", "--lease-id", "nope"], "lease id"),
        (["tokens", "release", "1", "--retry-in", "-5s"], "duration"),
        (["tokens", "release", "1", "--retry-in", "400d"], "too long"),
        (["tokens", "release", "1", "--retry-in", "soon"], "duration"),
        (["tokens", "claim", "--lease", "0s"], "longer than zero"),
        (
            [
                "tokens",
                "renew",
                "--lease-id",
                "00000000-0000-0000-0000-000000000001",
                "--lease",
                "0s",
            ],
            "longer than zero",
        ),
        (
            [
                "tokens",
                "renew",
                "--lease-id",
                "00000000-0000-0000-0000-000000000001",
                "--lease",
                "2d",
            ],
            "lease",
        ),
    ],
    ids=[
        "renew-malformed-lease-id",
        "mark-malformed-lease-id",
        "release-malformed-lease-id",
        "negative-retry-in",
        "retry-in-over-a-week",
        "unparsable-retry-in",
        "claim-zero-lease",
        "renew-zero-lease",
        "renew-lease-over-a-day",
    ],
)
def test_malformed_lease_ids_and_durations_exit_2_and_change_nothing(
    glisk, session_factory, args: list[str], needle: str
) -> None:
    seed_tokens(session_factory, 1)
    [token] = claim(glisk, "--worker", "w1")

    result = glisk(*args, expect=2)

    assert_one_error_line(result, needle)
    [after] = as_json(glisk("tokens", "list", "--json"))
    assert after == token


def test_a_malformed_lease_id_with_json_is_one_json_error_on_stderr(glisk) -> None:
    result = glisk("tokens", "renew", "--lease-id", "nope", "--json", expect=2)
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert json.loads(line)["error"]["code"] == "usage"


def test_release_under_the_lease_id_frees_the_token_for_the_next_claim_at_once(
    glisk, session_factory
) -> None:
    seed_tokens(session_factory, 2)
    [first, _] = claim(glisk, "--worker", "w1")

    released = as_json(glisk("tokens", "release", "1", "--lease-id", first["lease_id"], "--json"))

    assert [(t["token_id"], t["status"], t["lease_id"]) for t in released] == [
        (1, "detected", None)
    ]
    [again] = claim(glisk, "--worker", "w2")
    assert again["token_id"] == 1
    assert again["lease_id"] not in (None, first["lease_id"])
    assert again["attempts"] == 2


def test_release_with_retry_in_keeps_the_token_from_every_claim_until_then(
    glisk, session_factory
) -> None:
    seed_tokens(session_factory, 1)
    [token] = claim(glisk, "--worker", "w1")

    released = as_json(
        glisk(
            "tokens", "release", "1", "--lease-id", token["lease_id"], "--retry-in", "1h", "--json"
        )
    )

    assert [t["token_id"] for t in released] == [1]
    assert released[0]["status"] == "detected"
    assert released[0]["lease_id"] is None
    assert claim(glisk, "--worker", "w2") == []
    shown = as_json(glisk("tokens", "show", "1", "--json"))
    assert shown["status"] == "detected"
    assert shown["claimed_by"] is None
    # A retry delay is a lease nobody holds: the token is claimable again once it runs out.
    ahead = moment(shown["lease_expires_at"]) - datetime.now(UTC)
    assert timedelta(minutes=59) < ahead <= timedelta(hours=1)
    assert released[0]["lease_expires_at"] == shown["lease_expires_at"]


def test_renewing_a_lease_whose_tokens_all_moved_on_is_a_conflict(glisk, session_factory) -> None:
    seed_tokens(session_factory, 1)
    [token] = claim(glisk, "--worker", "w1")
    glisk("tokens", "mark", "1", "uploading", "--image-path", "p", "--lease-id", token["lease_id"])

    result = glisk("tokens", "renew", "--lease-id", token["lease_id"], expect=6)

    assert_one_error_line(result, token["lease_id"])
