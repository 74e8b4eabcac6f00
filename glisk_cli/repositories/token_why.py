"""TokenWhy: `uow.why` — what `glisk tokens why` reads to tell why a token is not moving: the
token's row at the database's clock, its stage's controls, and how many tokens the next claims
of the stage take before it. The decision itself is `glisk_cli.why`, on plain values.

Driver SQL on the Unit of Work's connection, as the workers' path is: no ORM model loads.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from glisk_cli.errors import NotFound
from glisk_cli.models.literals import status_in
from glisk_cli.pipeline import Stage, TokenStatus
from glisk_cli.repositories.base import Repository
from glisk_cli.repositories.pipeline_view_sql import COUNT_CAP
from glisk_cli.repositories.stage_controls import StageControls
from glisk_cli.repositories.token_sql import IN_INDEX_ORDER
from glisk_cli.why import Ahead, TokenFacts, Why, explain, waits_for

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from glisk_cli.db.transaction import Transaction
    from glisk_cli.policy import QueuePolicy

# One probe of the unique index on token_id; the clock is the one the claims compare leases to.
_ROW = """
SELECT token_id, status::text, mint_timestamp, attempts, error_data, claimed_by, lease_id,
       lease_expires_at, updated_at, statement_timestamp(), checkpoint
FROM tokens_s0 WHERE token_id = %(token_id)s
"""


def _capped(where: str) -> str:
    """Count the tokens `where` holds, stopping past COUNT_CAP: a token deep in a backlog of
    millions is told "more than …" rather than kept waiting for the count."""
    return f"(SELECT count(*) FROM (SELECT 1 FROM tokens_s0 WHERE {where} LIMIT {COUNT_CAP + 1}) c)"


@functools.cache
def ahead_sql(stage: Stage, *, due: bool) -> str:
    """The tokens of `stage` a claim takes before the token %(token_id)s, as counts: from the
    claim's first source, leases that ran out (a dead worker's, or a retry delay that is over),
    and from its second, free tokens with an older (mint_timestamp, token_id). A token that is
    itself in the first source (`due`: its retry delay is over) has only that source's earlier
    ones before it. Each count reads the index the claim reads (glisk_pick): the older
    mints and the same mint's lower token ids are counted apart, as one condition on both
    columns would not bound the queue index's scan."""
    claimable = status_in(stage.claimable)
    expired = f"{claimable} AND lease_expires_at < statement_timestamp()"
    if due:
        earlier = (
            "(lease_expires_at < %(expires)s "
            "OR (lease_expires_at = %(expires)s AND token_id < %(token_id)s))"
        )
        return f"SELECT {_capped(f'{expired} AND {earlier}')}, 0, 0"
    free = f"{claimable} AND lease_expires_at IS NULL"
    older = f"{free} AND mint_timestamp < %(mint)s"
    tied = f"{free} AND mint_timestamp = %(mint)s AND token_id < %(token_id)s"
    return f"SELECT {_capped(expired)}, {_capped(older)}, {_capped(tied)}"


class TokenWhy(Repository):
    """Why a token is not moving, read inside the Unit of Work's transaction."""

    def __init__(self, transaction: Transaction | Session, policy: QueuePolicy) -> None:
        super().__init__(transaction)
        self.policy = policy  # its lease is how a holder's last renewal is worked out

    def explain(self, token_id: int) -> Why:
        """Why token `token_id` is where it is (NotFound when there is none); see `glisk_cli.why`
        for the reasons and the order they are checked in."""
        token = self.facts(token_id)
        stage = waits_for(token)
        if stage is None:
            return explain(token, lease=self.policy.lease)
        state = StageControls(self.transaction).state(stage.name)
        # A lease that ran out is taken over by the next claim, ahead of the queue.
        ahead = self.ahead(token, stage) if token.claimed_by is None else None
        return explain(token, lease=self.policy.lease, stage=state, ahead=ahead)

    def facts(self, token_id: int) -> TokenFacts:
        """Token `token_id`'s row as `glisk_cli.why` reads it (NotFound when there is none)."""
        rows = self.transaction.rows(_ROW, {"token_id": token_id})
        if not rows:
            raise NotFound(f"token {token_id} not found")
        [(found, status, *columns)] = rows
        return TokenFacts(found, TokenStatus(status), *columns)

    def ahead(self, token: TokenFacts, stage: Stage) -> Ahead:
        """How many of `stage`'s tokens claimable now a claim takes before `token`."""
        due = token.lease_expires_at is not None
        params = {
            "token_id": token.token_id,
            "mint": token.mint_timestamp,
            "expires": token.lease_expires_at,
        }
        # Planned as the claim is, so that each count stops at the cap whatever the statistics.
        counts = self.transaction.rows(ahead_sql(stage, due=due), params, IN_INDEX_ORDER)[0]
        return Ahead(sum(min(count, COUNT_CAP) for count in counts), max(counts) <= COUNT_CAP)
