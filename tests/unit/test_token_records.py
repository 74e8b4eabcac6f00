"""The records of the workers' path: what `ClaimedToken.from_rows` builds is an ordinary frozen
ClaimedToken, however it is built (token_records.py)."""

from __future__ import annotations

import dataclasses
import pickle
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from glisk_cli.pipeline import TokenStatus
from glisk_cli.repositories.token_records import TOKEN_COLUMNS, ClaimedToken

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _row(token_id: int, minted: datetime) -> tuple:
    """A row as the claim statement returns it: TOKEN_COLUMNS, the status as text."""
    token = {
        "id": uuid.uuid4(),
        "token_id": token_id,
        "author_id": uuid.uuid4(),
        "minter_address": "0x" + "bb" * 20,
        "status": "generating",
        "mint_timestamp": minted,
        "claimed_by": "w1",
        "lease_expires_at": NOW,
        "attempts": 1,
        "created_at": NOW,
        "updated_at": NOW,
        "lease_id": uuid.uuid4(),
        "checkpoint": None,
    }
    return tuple(token.get(column) for column in TOKEN_COLUMNS)


def test_records_from_rows_are_frozen_claimed_tokens_oldest_mint_first() -> None:
    rows = [_row(3, NOW), _row(1, NOW), _row(2, NOW - timedelta(seconds=1))]
    tokens = ClaimedToken.from_rows(rows)

    assert [token.token_id for token in tokens] == [2, 1, 3]  # by mint, then token id
    token = tokens[0]
    assert type(token) is ClaimedToken
    assert token.status is TokenStatus.GENERATING
    fields: dict[str, Any] = dict(zip(TOKEN_COLUMNS, rows[2], strict=True))
    fields["status"] = TokenStatus.GENERATING
    assert token == ClaimedToken(**fields)
    assert len(dataclasses.fields(token)) == len(TOKEN_COLUMNS)
    assert not hasattr(token, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        token.attempts = 2  # type: ignore[misc]
    assert dataclasses.replace(token, attempts=2).attempts == 2
    assert pickle.loads(pickle.dumps(token)) == token  # noqa: S301  # our own bytes


def test_nothing_of_claimed_token_s_own_init_is_skipped_by_building_through_the_twin() -> None:
    # from_rows never runs ClaimedToken's __init__: a __post_init__ or a field left out of
    # __init__ would silently not apply to claimed records.
    assert not hasattr(ClaimedToken, "__post_init__")
    assert all(field.init for field in dataclasses.fields(ClaimedToken))
