"""What recording mints takes and refuses: the `Mint` record, a batch's own consistency, and the
conflict of a replay that contradicts what was recorded.

A mint is identified by its log, (tx_hash, log_index): recording it again with the same values
is a replay that changes nothing; with other values it is a conflict, named after the mint
already recorded, as is a token id that another mint already created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from glisk_cli.errors import Conflict, GliskError
from glisk_cli.models.base import require_aware

REPLAY_HINT = "a replay must repeat what was recorded"


@dataclass(frozen=True, slots=True)
class Mint:
    """One on-chain Mint log: the event's fields, and the token it creates (`author` is the
    author's wallet, which must be known; `minter` the minting address)."""

    tx_hash: str
    log_index: int
    block_number: int
    block_timestamp: datetime
    token_id: int
    author: str
    minter: str

    def __post_init__(self) -> None:
        # Its rows are written by driver SQL, past the models' check: the same refusal here.
        require_aware(self.block_timestamp, "block_timestamp")

    @property
    def key(self) -> tuple[str, int]:
        """The log that identifies the mint."""
        return self.tx_hash, self.log_index

    def differences(self, recorded: Mint) -> list[str]:
        """Each field in which this mint differs from `recorded`, said as `name given, not
        recorded` (addresses in any letter case are the same address)."""
        pairs = zip(_compared(self), _compared(recorded), strict=True)
        return [
            f"{name} {_said(given)}, not {_said(kept)}"
            for name, (given, kept) in zip(_FIELD_NAMES, pairs, strict=True)
            if given != kept
        ]


class MintRefused(GliskError):
    """Mint number `index` of a batch cannot be recorded, because of `cause` (whose exit code
    and code it carries); nothing of the batch may be committed."""

    def __init__(self, index: int, cause: GliskError) -> None:
        super().__init__(cause.message, hint=cause.hint)
        self.index = index
        self.cause = cause
        self.exit_code = cause.exit_code
        self.code = cause.code


def replay_conflict(recorded: Mint, given: Mint) -> Conflict | None:
    """The conflict of `given` replaying the log of `recorded` with other values, or None when
    it repeats them."""
    changed = given.differences(recorded)
    if not changed:
        return None
    return Conflict(
        f"mint {recorded.tx_hash} log {recorded.log_index} is recorded already, for token "
        f"{recorded.token_id}, and this replay differs: {'; '.join(changed)}",
        hint=REPLAY_HINT,
    )


def token_taken(token_id: int, holder: tuple[str, int] | None) -> Conflict:
    """The conflict of a new mint whose token id exists already (`holder`: the log of the mint
    that created it, if any did)."""
    by = f"by mint {holder[0]} log {holder[1]}" if holder else "(created by no recorded mint)"
    return Conflict(f"token {token_id} is recorded already {by}")


def batch_problems(mints: Sequence[Mint]) -> tuple[list[int], dict[int, GliskError]]:
    """Which of `mints` to write, and what is wrong with the others by their place in the
    batch, judged within the batch alone: a log given twice is written once (again with the
    same values: a replay; with others: a conflict), and a token id two logs claim is a
    conflict for the later one."""
    first_of_log: dict[tuple[str, int], int] = {}
    first_of_token: dict[int, int] = {}
    unique: list[int] = []
    problems: dict[int, GliskError] = {}
    for index, mint in enumerate(mints):
        earlier = first_of_log.setdefault(mint.key, index)
        if earlier != index:
            conflict = replay_conflict(mints[earlier], mint)
            if conflict is not None:
                problems[index] = conflict
            continue
        holder = first_of_token.setdefault(mint.token_id, index)
        if holder != index:
            problems[index] = token_taken(mint.token_id, mints[holder].key)
            continue
        unique.append(index)
    return unique, problems


_FIELD_NAMES = tuple(field.name for field in fields(Mint))


def _compared(mint: Mint) -> tuple[object, ...]:
    """The mint's fields in order, as they are compared."""
    return (
        mint.tx_hash,
        mint.log_index,
        mint.block_number,
        mint.block_timestamp,
        mint.token_id,
        mint.author.lower(),
        mint.minter.lower(),
    )


def _said(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
