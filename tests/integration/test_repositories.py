"""Repositories against a real PostgreSQL: the seed's named tests, and what they imply."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from glisk_cli.errors import Conflict, InvalidInput
from glisk_cli.models import Author, MintEvent, Token, TokenStatus
from tests.conftest import seed_tokens

WALLET = "0xABCDEF0123456789abcdef0123456789ABCDEF01"
LEASE = timedelta(minutes=15)


def test_concurrent_workers_receive_non_overlapping_tokens(session_factory, uow_factory) -> None:
    seed_tokens(session_factory, 20)
    barrier = threading.Barrier(2)
    results: dict[str, list[int]] = {}

    def worker(name: str) -> None:
        with uow_factory() as uow:
            barrier.wait()  # both transactions are open before either claims
            results[name] = [t.token_id for t in uow.tokens.get_pending_for_generation(limit=10)]
            barrier.wait()  # hold the row locks until the other worker has claimed too

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(results["a"]) == 10
    assert len(results["b"]) == 10
    assert set(results["a"]).isdisjoint(results["b"])
    assert sorted(results["a"] + results["b"]) == list(range(1, 21))


def test_case_insensitive_wallet_lookup(uow_factory) -> None:
    with uow_factory() as uow:
        uow.authors.add(Author(wallet_address=WALLET, prompt_text="a fox in the snow"))
    with uow_factory() as uow:
        found = uow.authors.get_by_wallet(WALLET.lower())
    assert found is not None
    assert found.wallet_address == WALLET
    assert found.prompt_text == "a fox in the snow"


def test_wallets_differing_only_in_case_cannot_coexist(uow_factory) -> None:
    with uow_factory() as uow:
        uow.authors.add(Author(wallet_address=WALLET, prompt_text="first"))
    with pytest.raises(Conflict, match="already exists"), uow_factory() as uow:
        uow.authors.add(Author(wallet_address=WALLET.lower(), prompt_text="second"))


def test_malformed_wallet_is_refused_with_a_clear_message() -> None:
    with pytest.raises(InvalidInput, match="invalid wallet address"):
        Author(wallet_address="0x123", prompt_text="p")


def test_mint_event_duplicate_detection(uow_factory) -> None:
    event = {
        "tx_hash": "0x" + "ab" * 32,
        "log_index": 3,
        "block_number": 19_000_000,
        "block_timestamp": datetime(2026, 1, 1, tzinfo=UTC),
        "token_id": 7,
    }
    with uow_factory() as uow:
        assert uow.mint_events.exists(event["tx_hash"], 3) is False
        uow.mint_events.add(MintEvent(**event))
    with uow_factory() as uow:
        assert uow.mint_events.exists(event["tx_hash"], 3) is True
        assert uow.mint_events.exists(event["tx_hash"], 4) is False
        assert [e.token_id for e in uow.mint_events.get_by_block_range(18_999_999, 19_000_000)] == [
            7
        ]
    with pytest.raises(Conflict), uow_factory() as uow:
        uow.mint_events.add(MintEvent(**event))


def test_system_state_upsert(uow_factory) -> None:
    with uow_factory() as uow:
        uow.system_state.set_state("key", "value1")
    with uow_factory() as uow:
        uow.system_state.set_state("key", "value2")
    with uow_factory() as uow:
        assert uow.system_state.get_state("key") == "value2"
        assert [entry.key for entry in uow.system_state.list()] == ["key"]


@pytest.mark.parametrize(
    "value",
    [
        {"nested": {"list": [1, 2.5, None, True, "x"], "empty": {}}},
        "unicode: ümlaut ✓ 日本語 🦊",
        123456789012345678901234567890,
        None,
        [],
        -0.5,
        "'; DROP TABLE system_state; --",
    ],
    ids=["nested", "unicode", "big-integer", "null", "empty-list", "float", "sql-text"],
)
def test_json_state_values_round_trip_exactly(uow_factory, value: object) -> None:
    with uow_factory() as uow:
        uow.system_state.set_state("cursor", value)
    with uow_factory() as uow:
        stored = uow.system_state.get_state("cursor")
    assert stored == value
    assert type(stored) is type(value)


def test_state_delete_is_idempotent_and_prefix_listing_is_literal(uow_factory) -> None:
    with uow_factory() as uow:
        for key in ("a%b", "a_b", "axb", "b"):
            uow.system_state.set_state(key, 1)
    with uow_factory() as uow:
        assert [entry.key for entry in uow.system_state.list(prefix="a%")] == ["a%b"]
        assert [entry.key for entry in uow.system_state.list(prefix="a_")] == ["a_b"]
        assert uow.system_state.delete_state("b") is True
        assert uow.system_state.delete_state("b") is False


def test_tokens_are_found_by_status_author_and_id_oldest_first(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 5)
    with uow_factory() as uow:
        detected = uow.tokens.get_by_status(TokenStatus.DETECTED, limit=3)
        author = detected[0].author_id
        assert [t.token_id for t in detected] == [1, 2, 3]
        assert len(uow.tokens.get_by_author(author)) == 5
        assert uow.tokens.get_by_token_id(4) is not None
        assert uow.tokens.get_by_token_id(99) is None
        by_id = uow.tokens.get_by_id(detected[1].id)
        assert by_id is not None
        assert by_id.token_id == 2


def test_a_token_naming_a_missing_author_is_refused(uow_factory) -> None:
    import uuid

    from glisk_cli.errors import NotFound

    token = Token(
        token_id=1,
        author_id=uuid.uuid4(),
        minter_address="0x" + "1" * 40,
        mint_timestamp=datetime(2026, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(NotFound, match="referenced row does not exist"), uow_factory() as uow:
        uow.tokens.add(token)
