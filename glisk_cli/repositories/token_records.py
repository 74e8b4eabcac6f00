"""What the workers' hot path returns: small frozen records, not ORM models.

A claim, renewal, advance or release runs one Core statement on the Unit of Work's connection
(docs/architecture.md, "The workers' path below the ORM"); its rows become these records, which
cost a fraction of an ORM model to build and stay valid after the Unit of Work ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, make_dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any, cast

from glisk_cli.pipeline import TokenStatus

# tokens_s0's columns in the order ClaimedToken takes them (and the statements return them).
CLAIMED_COLUMNS = (
    "id", "token_id", "author_id", "minter_address", "status", "mint_timestamp", "image_path",
    "image_cid", "metadata_cid", "reveal_tx_hash", "error_data", "claimed_by", "lease_id",
    "lease_expires_at", "attempts", "created_at", "updated_at",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ClaimedToken:
    """A token as its claim (or renewal) left it. `lease_id` is the fence: renewing, advancing
    or releasing the token succeeds only while the token still carries it."""

    id: uuid.UUID
    token_id: int
    author_id: uuid.UUID
    minter_address: str
    status: TokenStatus
    mint_timestamp: datetime
    image_path: str | None
    image_cid: str | None
    metadata_cid: str | None
    reveal_tx_hash: str | None
    error_data: dict[str, Any] | None
    claimed_by: str | None
    lease_id: uuid.UUID | None
    lease_expires_at: datetime | None
    attempts: int
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def from_rows(rows: Sequence[Sequence[Any]]) -> list[ClaimedToken]:
        """Records from rows in CLAIMED_COLUMNS order, oldest mint first."""
        tokens = [_record(row) for row in rows]
        tokens.sort(key=_MINT_ORDER)
        return tokens


# A frozen dataclass's __init__ sets each field through object.__setattr__, several times the
# cost of a plain assignment: for a claim's records, a visible part of its client time
# (bench/README.md, "Claim throughput"). So a row becomes a record through a mutable twin with
# the same slots, whose __init__ assigns plainly, and the result then takes ClaimedToken's class
# (the same layout, so Python allows the switch). What callers get is an ordinary ClaimedToken.
_Unfrozen = make_dataclass(
    "_Unfrozen", [(field.name, field.type) for field in fields(ClaimedToken)], slots=True
)
_STATUSES = {status.value: status for status in TokenStatus}
_MINT_ORDER = attrgetter("mint_timestamp", "token_id")


def _record(row: Sequence[Any]) -> ClaimedToken:
    record = _Unfrozen(*row[:4], _STATUSES[row[4]], *row[5:])
    record.__class__ = ClaimedToken
    return cast(ClaimedToken, record)


@dataclass(frozen=True)
class AdvanceResult:
    """What a batch move did: the token ids moved (ascending), and why each other was refused
    (`lease_lost`, `illegal_transition` or `missing_field`)."""

    moved: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Backlog:
    """What is left of one stage's work: tokens claimable now, tokens waiting out a retry
    delay, tokens in flight under anyone's lease, and the oldest waiting token's mint time."""

    waiting: int
    delayed: int
    in_flight: int
    oldest_waiting: datetime | None

    @property
    def empty(self) -> bool:
        return not (self.waiting or self.delayed or self.in_flight)
