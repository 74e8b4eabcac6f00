"""A claimed token made up for a test that needs no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from glisk_cli.pipeline import TokenStatus
from glisk_cli.repositories.token_records import ClaimedToken

MINTED = datetime(2026, 1, 1, tzinfo=UTC)


def claimed_token(token_id: int, status: TokenStatus, **fields: Any) -> ClaimedToken:
    """Token `token_id` as a claim of its stage hands it out (`fields` change any of it)."""
    made: dict[str, Any] = {
        "id": uuid.uuid4(),
        "token_id": token_id,
        "author_id": uuid.uuid4(),
        "minter_address": "0x" + "bb" * 20,
        "status": status,
        "mint_timestamp": MINTED,
        "image_path": None,
        "image_cid": None,
        "metadata_cid": None,
        "reveal_tx_hash": None,
        "error_data": None,
        "claimed_by": "w1",
        "lease_expires_at": MINTED,
        "attempts": 1,
        "created_at": MINTED,
        "updated_at": MINTED,
        "lease_id": uuid.uuid4(),
        "checkpoint": None,
    }
    return ClaimedToken(**made | fields)
