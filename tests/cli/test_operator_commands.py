"""`glisk tokens|state|authors|mints|dev` end to end (in-process, real PostgreSQL)."""

import io
import threading
import time
from datetime import UTC, datetime

import pytest

from glisk_cli.models import TokenStatus
from tests.cli.mints import WALLET, record_mint
from tests.cli.outputs import as_json

TOKEN_KEYS = [
    "id",
    "token_id",
    "author_id",
    "minter_address",
    "status",
    "mint_timestamp",
    "image_path",
    "image_cid",
    "metadata_cid",
    "reveal_tx_hash",
    "error_data",
    "claimed_by",
    "lease_expires_at",
    "attempts",
    "created_at",
    "updated_at",
    "lease_id",
    "checkpoint",
]


@pytest.fixture
def three_tokens(glisk) -> None:
    glisk("authors", "add", "--wallet", WALLET, "--prompt", "a fox in the snow")
    for token_id in (1, 2, 3):
        record_mint(glisk, token_id)


def test_claim_json_is_an_array_of_token_objects_with_the_contract_keys(
    glisk, three_tokens
) -> None:
    claimed = as_json(glisk("tokens", "claim", "--limit", "2", "--worker", "w1", "--json"))
    assert isinstance(claimed, list)
    assert [token["token_id"] for token in claimed] == [1, 2]
    assert list(claimed[0]) == TOKEN_KEYS
    assert claimed[0]["status"] == "generating"
    assert claimed[0]["claimed_by"] == "w1"
    assert claimed[0]["lease_expires_at"].endswith("Z")
    assert as_json(glisk("tokens", "claim", "--stage", "upload", "--json")) == []


def test_claim_defaults_worker_to_host_and_pid_and_lease_to_the_setting(
    glisk, three_tokens
) -> None:
    [token] = as_json(
        glisk("tokens", "claim", "--limit", "1", "--json", env={"GLISK_LEASE": "90s"})
    )
    assert ":" in token["claimed_by"]
    expires = datetime.fromisoformat(token["lease_expires_at"])
    updated = datetime.fromisoformat(token["updated_at"])
    assert 85 <= (expires - updated).total_seconds() <= 95


def test_claim_wait_wakes_within_two_seconds_of_a_mint_being_recorded(
    glisk, three_tokens, uow_factory
) -> None:
    glisk("tokens", "claim", "--limit", "10", "--json")  # the queue is now empty

    def record_later() -> None:
        time.sleep(1.5)
        recorded_at.append(time.monotonic())
        record_mint(glisk_background, 4)

    recorded_at: list[float] = []
    glisk_background = glisk
    threading.Thread(target=record_later, daemon=True).start()
    result = glisk("tokens", "claim", "--wait", "10", "--json")
    returned_at = time.monotonic()

    assert [token["token_id"] for token in as_json(result)] == [4]
    assert returned_at - recorded_at[0] < 2.0


def test_claim_wait_times_out_with_an_empty_array(glisk, three_tokens) -> None:
    glisk("tokens", "claim", "--limit", "10")
    started = time.monotonic()
    result = glisk("tokens", "claim", "--wait", "1.5", "--json")
    assert as_json(result) == []
    assert 1.4 <= time.monotonic() - started < 5


def test_list_pages_by_token_id_and_filters_by_status_and_author(glisk, three_tokens) -> None:
    glisk("tokens", "claim", "--limit", "1")
    first = as_json(glisk("tokens", "list", "--limit", "2", "--json"))
    rest = as_json(glisk("tokens", "list", "--after", "2", "--json"))
    detected = as_json(glisk("tokens", "list", "--status", "detected", "--json"))
    mine = as_json(
        glisk("tokens", "list", "--author", WALLET.upper().replace("0X", "0x"), "--json")
    )
    assert [t["token_id"] for t in first] == [1, 2]
    assert [t["token_id"] for t in rest] == [3]
    assert [t["token_id"] for t in detected] == [2, 3]
    assert len(mine) == 3


def test_show_stats_and_mark_walk_a_token_through_the_pipeline(glisk, three_tokens) -> None:
    glisk("tokens", "claim", "--limit", "1", "--worker", "w1")
    glisk("tokens", "mark", "1", "uploading", "--image-path", "img/1.png", "--worker", "w1")
    glisk("tokens", "mark", "1", "ready", "--metadata-cid", "bafy1")
    glisk("tokens", "mark", "1", "revealed", "--tx-hash", "0x" + "c" * 64)
    glisk("tokens", "mark", "2", "failed", "--error", '{"reason": "nsfw"}')

    shown = as_json(glisk("tokens", "show", "1", "--json"))
    stats = as_json(glisk("tokens", "stats", "--json"))

    assert shown["status"] == "revealed"
    assert shown["image_path"] == "img/1.png"
    assert shown["reveal_tx_hash"] == "0x" + "c" * 64
    assert {name: s["count"] for name, s in stats["statuses"].items() if s["count"]} == {
        "detected": 1,
        "revealed": 1,
        "failed": 1,
    }
    assert stats["failed_by_reason"] == {"nsfw": 1}
    assert stats["statuses"]["detected"]["oldest_age_seconds"] > 0


def test_failed_mark_changes_nothing(glisk, three_tokens) -> None:
    before = as_json(glisk("tokens", "show", "1", "--json"))
    result = glisk("tokens", "mark", "1", "revealed", "--tx-hash", "0x" + "d" * 64, expect=6)
    after = as_json(glisk("tokens", "show", "1", "--json"))
    assert "Cannot mark revealed from detected. Token must be in ready state." in result.stderr
    assert after == before


def test_release_reap_and_retry(glisk, three_tokens) -> None:
    glisk("tokens", "claim", "--limit", "3", "--worker", "w1")
    glisk("tokens", "release", "1", "--worker", "w2", expect=6)
    released = as_json(glisk("tokens", "release", "1", "--worker", "w1", "--json"))
    assert released[0]["status"] == "detected"
    reaped = as_json(glisk("tokens", "reap", "--json", env={"GLISK_MAX_ATTEMPTS": "1"}))
    # Token 1 was released after its one allowed attempt; 2 and 3 still hold live leases.
    assert [t["token_id"] for t in reaped] == [1]
    assert reaped[0]["error_data"]["reason"] == "max_attempts"
    glisk("tokens", "mark", "2", "failed")
    glisk("tokens", "retry", "--all-failed", expect=2)  # no terminal, no --yes
    retried = as_json(glisk("tokens", "retry", "--all-failed", "--yes", "--json"))
    assert [t["token_id"] for t in retried] == [1, 2]
    assert {t["status"] for t in retried} == {"detected"}
    assert {t["attempts"] for t in retried} == {0}


def fail_after(glisk, token_id: int, *moves: list[str]) -> None:
    """Move token `token_id` through `moves` (each a status and its options), then fail it."""
    for move in moves:
        glisk("tokens", "mark", str(token_id), *move)
    glisk("tokens", "mark", str(token_id), "failed")


def test_retry_sends_each_failed_token_back_to_the_stage_that_failed(glisk, three_tokens) -> None:
    fail_after(glisk, 1, ["generating"])
    fail_after(glisk, 2, ["generating"], ["uploading", "--image-path", "images/2.png"])
    fail_after(
        glisk,
        3,
        ["generating"],
        ["uploading", "--image-path", "images/3.png"],
        ["ready", "--metadata-cid", "meta-3", "--image-cid", "image-3"],
    )
    retried = as_json(glisk("tokens", "retry", "1", "2", "3", "--json"))

    assert list(retried[0]) == TOKEN_KEYS
    assert [(t["token_id"], t["status"], t["attempts"]) for t in retried] == [
        (1, "detected", 0),
        (2, "uploading", 0),
        (3, "ready", 0),
    ]
    assert retried[1]["image_path"] == "images/2.png"
    assert (retried[2]["image_path"], retried[2]["image_cid"], retried[2]["metadata_cid"]) == (
        "images/3.png",
        "image-3",
        "meta-3",
    )
    # Each is claimable by exactly the stage that failed it.
    for stage, token_id in (("reveal", 3), ("upload", 2), ("generation", 1)):
        claimed = as_json(glisk("tokens", "claim", "--stage", stage, "--limit", "9", "--json"))
        assert [token["token_id"] for token in claimed] == [token_id], stage


def test_retry_from_start_sends_failed_tokens_back_to_detected(glisk, three_tokens) -> None:
    fail_after(glisk, 2, ["generating"], ["uploading", "--image-path", "images/2.png"])
    glisk("tokens", "retry", "--all-failed", "--from-start", expect=2)  # no terminal, no --yes
    [retried] = as_json(glisk("tokens", "retry", "--all-failed", "--from-start", "--yes", "--json"))
    assert (retried["token_id"], retried["status"], retried["attempts"]) == (2, "detected", 0)
    claimed = as_json(glisk("tokens", "claim", "--limit", "9", "--json"))
    assert [token["token_id"] for token in claimed] == [1, 2, 3]


def test_state_set_get_list_delete(glisk, monkeypatch: pytest.MonkeyPatch) -> None:
    glisk("state", "set", "cursor", '{"block": 19000000, "hash": "0xabc"}')
    glisk("state", "set", "name", "plain words", "--string")
    glisk("state", "set", "offset", "-1")  # a negative number is a value, not an option
    assert as_json(glisk("state", "get", "offset")) == -1
    monkeypatch.setattr("sys.stdin", io.StringIO('[1, 2, {"three": null}]\n'))
    glisk("state", "set", "from-stdin", "-")

    assert as_json(glisk("state", "get", "cursor")) == {"block": 19000000, "hash": "0xabc"}
    assert as_json(glisk("state", "get", "name")) == "plain words"
    assert as_json(glisk("state", "get", "from-stdin")) == [1, 2, {"three": None}]
    listed = as_json(glisk("state", "list", "--prefix", "cur", "--json"))
    assert [entry["key"] for entry in listed] == ["cursor"]
    assert as_json(glisk("state", "delete", "cursor", "--json")) == {
        "key": "cursor",
        "deleted": True,
    }
    assert as_json(glisk("state", "delete", "cursor", "--json"))["deleted"] is False
    glisk("state", "get", "cursor", expect=5)


def test_failed_state_set_changes_nothing(glisk) -> None:
    glisk("state", "set", "cursor", "41")
    glisk("state", "set", "cursor", "{not json", expect=2)
    assert as_json(glisk("state", "get", "cursor")) == 41


def test_authors_add_get_list(glisk) -> None:
    added = as_json(
        glisk("authors", "add", "--wallet", WALLET, "--prompt", "p", "--twitter", "fox", "--json")
    )
    found = as_json(glisk("authors", "get", WALLET.lower(), "--json"))
    listed = as_json(glisk("authors", "list", "--json"))
    assert found == added
    assert found["twitter_handle"] == "fox"
    assert [author["wallet_address"] for author in listed] == [WALLET]
    glisk("authors", "add", "--wallet", WALLET.lower(), "--prompt", "dup", expect=6)
    glisk("authors", "get", "0x" + "9" * 40, expect=5)


def test_dev_seed_adds_authors_and_detected_tokens(glisk, uow_factory) -> None:
    report = as_json(glisk("dev", "seed", "--authors", "3", "--tokens", "120", "--yes", "--json"))
    assert report == {"authors": 3, "tokens": 120, "first_token_id": 1}
    with uow_factory() as uow:
        assert len(uow.tokens.get_by_status(TokenStatus.DETECTED, limit=1000)) == 120
        assert len(uow.authors.list_all()) == 3


def test_dev_seed_is_refused_in_production(glisk) -> None:
    result = glisk("dev", "seed", "--yes", env={"APP_ENV": "production"}, expect=2)
    assert "production" in result.stderr


def test_pipeline_commands_refuse_an_unmigrated_database(cli, database_url: str) -> None:
    result = cli("state", "get", "cursor", env={"DATABASE_URL": database_url})
    assert result.exit_code == 7
    assert "run: glisk db upgrade" in result.stderr


def test_timestamps_are_printed_in_utc_iso_8601(glisk) -> None:
    glisk("authors", "add", "--wallet", WALLET, "--prompt", "p")
    token = record_mint(glisk, 5, when="2026-03-08T02:30:00-08:00")["token"]
    assert token["mint_timestamp"] == "2026-03-08T10:30:00Z"
    assert datetime.fromisoformat(token["created_at"]).tzinfo == UTC
