"""MintEventRepository: mint_events, the on-chain logs already recorded, and recording new ones
with their detected tokens (docs/architecture.md, "Recording mints")."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import exists, select, text

from glisk_cli.errors import GliskError, NotFound
from glisk_cli.models import MintEvent
from glisk_cli.repositories.array_literal import array_literal
from glisk_cli.repositories.base import TableRepository
from glisk_cli.repositories.mint_records import (
    Mint,
    MintRefused,
    batch_problems,
    replay_conflict,
    token_taken,
)


class MintEventRepository(TableRepository[MintEvent]):
    model = MintEvent

    def exists(self, tx_hash: str, log_index: int) -> bool:
        """Whether this log was recorded already — duplicate detection for the chain listener,
        answered from the (tx_hash, log_index) unique index."""
        query = select(
            exists().where(MintEvent.tx_hash == tx_hash, MintEvent.log_index == log_index)
        )
        return bool(self._execute(query).scalar_one())

    def get_by_block_range(self, first_block: int, last_block: int) -> Sequence[MintEvent]:
        """Events in blocks first_block..last_block inclusive, in chain order."""
        query = (
            select(MintEvent)
            .where(MintEvent.block_number.between(first_block, last_block))
            .order_by(MintEvent.block_number, MintEvent.log_index)
        )
        return self._execute(query).scalars().all()

    def record(self, mints: Sequence[Mint]) -> list[bool]:
        """Record each mint's event and its detected token; return, for each, whether it was
        new (False: a replay of what is recorded, which changes nothing).

        Set-wise: one statement finds the authors, one writes the new events and their tokens
        (INSERT … ON CONFLICT DO NOTHING, so two recorders racing on one log agree), one reads
        back what replays replay. Raises MintRefused, naming the first mint that cannot be
        recorded (its author unknown; a replay that contradicts the recorded mint; a token id
        another mint created), after which the caller's transaction must roll back, as the Unit
        of Work's does: nothing of the batch is then written.
        """
        authors = self._author_ids({mint.author.lower() for mint in mints})
        unique, problems = batch_problems(mints)
        for index in unique:
            if mints[index].author.lower() not in authors:
                problems[index] = NotFound(
                    f"author {mints[index].author} not found", hint="add it: glisk authors add"
                )
        written = [index for index in unique if index not in problems]
        new = [False] * len(mints)
        rows = self.transaction.rows(_RECORD, _columns([mints[i] for i in written], authors))
        created = {(tx_hash, log_index): token for tx_hash, log_index, token in rows}
        replays, taken = [], []
        for index in written:
            key = mints[index].key
            if key not in created:
                replays.append(index)
            elif created[key]:
                new[index] = True
            else:
                taken.append(index)
        recorded = self._recorded([mints[index].key for index in replays])
        for index in replays:
            problem = self._replay_problem(recorded.get(mints[index].key), mints[index])
            if problem is not None:
                problems[index] = problem
        if problems or taken:
            first = min([*problems, *taken])
            mint = mints[first]
            cause = problems.get(first) or token_taken(mint.token_id, self._creator(mint))
            raise MintRefused(first, cause)
        return new

    def analyze(self) -> None:
        """Refresh the planner's statistics of the tables recording mints fills, after a bulk
        load (a role that does not own them skips it with a warning)."""
        self._execute(text("ANALYZE mint_events, tokens_s0"))

    def _author_ids(self, wallets: set[str]) -> dict[str, uuid.UUID]:
        """The ids of the authors of `wallets` (lower case), by wallet; unknown ones left out."""
        rows = self.transaction.rows(_AUTHORS, {"wallets": array_literal(wallets)})
        return {wallet: author_id for wallet, author_id in rows}

    def _recorded(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], Mint | None]:
        """The recorded mints of these logs, by log (None: recorded without its token)."""
        if not keys:
            return {}
        params = {
            "tx_hashes": array_literal(key[0] for key in keys),
            "log_indexes": array_literal(key[1] for key in keys),
        }
        found: dict[tuple[str, int], Mint | None] = {}
        for tx_hash, log_index, number, stamp, token_id, author, minter in self.transaction.rows(
            _RECORDED, params
        ):
            found[tx_hash, log_index] = (
                None
                if author is None
                else Mint(tx_hash, log_index, number, stamp, token_id, author, minter)
            )
        return found

    def _replay_problem(self, recorded: Mint | None, mint: Mint) -> GliskError | None:
        if recorded is None:
            return NotFound(
                f"mint {mint.tx_hash} log {mint.log_index} is recorded, but its token is not"
            )
        return replay_conflict(recorded, mint)

    def _creator(self, mint: Mint) -> tuple[str, int] | None:
        """The log of the mint that created `mint`'s token, if a mint did."""
        params = {"token_id": mint.token_id, "tx_hash": mint.tx_hash, "log_index": mint.log_index}
        rows = self.transaction.rows(_CREATOR, params)
        return (rows[0][0], rows[0][1]) if rows else None


def _columns(mints: Sequence[Mint], authors: dict[str, uuid.UUID]) -> dict[str, str]:
    """The parameters of _RECORD: the mints as parallel arrays."""
    return {
        "tx_hashes": array_literal(mint.tx_hash for mint in mints),
        "log_indexes": array_literal(mint.log_index for mint in mints),
        "block_numbers": array_literal(mint.block_number for mint in mints),
        "block_timestamps": array_literal(mint.block_timestamp for mint in mints),
        "token_ids": array_literal(mint.token_id for mint in mints),
        "author_ids": array_literal(authors[mint.author.lower()] for mint in mints),
        "minters": array_literal(mint.minter for mint in mints),
    }


# Matched through the unique index on lower(wallet_address).
_AUTHORS = """
SELECT lower(wallet_address), id FROM authors
WHERE lower(wallet_address) = ANY (%(wallets)s::text[])
"""

# The new logs' events, then the tokens of the logs that were new, each an INSERT … SELECT over
# the batch's arrays: ON CONFLICT DO NOTHING skips a log recorded already (a replay, checked
# afterwards) and a token id that exists already (a conflict). It returns each new log, and
# whether its token was created.
_RECORD = """
WITH given AS (
    SELECT * FROM unnest(
        %(tx_hashes)s::text[], %(log_indexes)s::int[], %(block_numbers)s::bigint[],
        %(block_timestamps)s::timestamptz[], %(token_ids)s::int[], %(author_ids)s::uuid[],
        %(minters)s::text[]
    ) AS given(tx_hash, log_index, block_number, block_timestamp, token_id, author_id, minter)
),
events AS (
    INSERT INTO mint_events (tx_hash, log_index, block_number, block_timestamp, token_id)
    SELECT tx_hash, log_index, block_number, block_timestamp, token_id FROM given
    ON CONFLICT (tx_hash, log_index) DO NOTHING
    RETURNING tx_hash, log_index, token_id
),
tokens AS (
    INSERT INTO tokens_s0 (token_id, author_id, minter_address, mint_timestamp)
    SELECT given.token_id, given.author_id, given.minter, given.block_timestamp
    FROM given JOIN events USING (tx_hash, log_index)
    ON CONFLICT (token_id) DO NOTHING
    RETURNING token_id
)
SELECT events.tx_hash, events.log_index, tokens.token_id IS NOT NULL
FROM events LEFT JOIN tokens USING (token_id)
"""

# The recorded mints of the given logs, as Mint's fields (author and minter NULL when the token
# is missing), from the (tx_hash, log_index) unique index.
_RECORDED = """
SELECT e.tx_hash, e.log_index, e.block_number, e.block_timestamp, e.token_id,
       a.wallet_address, t.minter_address
FROM unnest(%(tx_hashes)s::text[], %(log_indexes)s::int[]) AS wanted(tx_hash, log_index)
JOIN mint_events AS e ON e.tx_hash = wanted.tx_hash AND e.log_index = wanted.log_index
LEFT JOIN tokens_s0 AS t ON t.token_id = e.token_id
LEFT JOIN authors AS a ON a.id = t.author_id
"""

# Only when a token id is refused, so no index on mint_events.token_id serves it.
_CREATOR = """
SELECT tx_hash, log_index FROM mint_events
WHERE token_id = %(token_id)s AND (tx_hash, log_index) <> (%(tx_hash)s, %(log_index)s)
LIMIT 1
"""
