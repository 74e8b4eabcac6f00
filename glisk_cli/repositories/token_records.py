"""What the workers' path returns: small frozen records, not ORM models.

A claim, renewal, advance or release runs one statement of driver SQL on the Unit of Work's
connection (docs/architecture.md, "The workers' path below the ORM"); its rows become these
records, which cost a fraction of an ORM model to build and stay valid after the Unit of Work.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, make_dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any, cast

from glisk_cli.pipeline import TokenStatus


@dataclass(frozen=True, slots=True)
class ClaimedToken:
    """A token as its claim (or renewal) left it. `lease_id` is the fence: renewing, advancing
    or releasing the token succeeds only while the token still carries it.

    Its fields, in this order, are the token's document (`documents.token_document`) and the
    columns the workers' statements return (`TOKEN_COLUMNS`)."""

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
    lease_expires_at: datetime | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    lease_id: uuid.UUID | None
    checkpoint: dict[str, Any] | None  # the latest a job recorded under a lease, to resume from

    @staticmethod
    def from_rows(rows: Sequence[Sequence[Any]]) -> list[ClaimedToken]:
        """Records from rows of TOKEN_COLUMNS, oldest mint first."""
        tokens = [_record(row) for row in rows]
        tokens.sort(key=MINT_ORDER)
        return tokens


TOKEN_COLUMNS = tuple(field.name for field in fields(ClaimedToken))

# A frozen dataclass's __init__ sets each field through object.__setattr__, far slower than a
# plain assignment, for every record of every claim. So a row becomes a record
# through a mutable twin with the same slots, whose __init__ assigns plainly, and the result
# then takes ClaimedToken's class (the same layout, so Python allows the switch): what callers
# get is an ordinary ClaimedToken.
_Unfrozen = make_dataclass(
    "_Unfrozen", [(field.name, field.type) for field in fields(ClaimedToken)], slots=True
)
_STATUS = TOKEN_COLUMNS.index("status")
_STATUSES = {status.value: status for status in TokenStatus}
MINT_ORDER = attrgetter("mint_timestamp", "token_id")  # how tokens are handed out


def _record(row: Sequence[Any]) -> ClaimedToken:
    record = _Unfrozen(*row[:_STATUS], _STATUSES[row[_STATUS]], *row[_STATUS + 1 :])
    record.__class__ = ClaimedToken
    return cast(ClaimedToken, record)


@dataclass(frozen=True)
class AdvanceResult:
    """What a batch move or release did: the token ids it moved (ascending); of a release, those
    it failed for good because they had used up their attempts; and why each other was refused
    (`lease_lost`, `illegal_transition` or `missing_field`)."""

    moved: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)
    failed: list[int] = field(default_factory=list)


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
