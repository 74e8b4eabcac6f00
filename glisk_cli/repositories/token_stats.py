"""The token counts behind `glisk tokens stats` and /metrics, as a typed result.

Exact, in three statements that never scan the table (an index-only scan still visits the rows of
pages changed since the last vacuum; autovacuum keeps those few on this table):

- the counts, by an index-only scan of `ix_tokens_s0_status` (migration 0004), and the oldest
  mint of each status present, one probe of the (status, mint_timestamp) index;
- live and expired leases, and tokens waiting out a retry delay (a lease nobody holds), from
  `ix_tokens_s0_lease_expiry` (only leased tokens; it carries lease_id);
- failed tokens by reason, fetching only the failed rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal_column, select, true
from sqlalchemy.orm import Session

from glisk_cli.db.planner import planned
from glisk_cli.db.translate import translate_errors
from glisk_cli.pipeline import TokenStatus
from glisk_cli.repositories.token_sql import THROUGH_INDEXES


@dataclass(frozen=True)
class StatusFigures:
    count: int = 0
    oldest_mint_timestamp: datetime | None = None
    oldest_age_seconds: float | None = None


@dataclass(frozen=True)
class TokenStats:
    """Tokens per status (every status, in pipeline order), leases, failures by reason."""

    statuses: dict[TokenStatus, StatusFigures]
    live_leases: int
    expired_leases: int
    retry_waits: int  # tokens released after a failure, not claimable before their delay is over
    failed_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(figures.count for figures in self.statuses.values())

    def as_document(self) -> dict[str, Any]:
        """The JSON document of `glisk tokens stats --json`."""
        return {
            "total": self.total,
            "statuses": {
                status.value: {
                    "count": figures.count,
                    "oldest_mint_timestamp": figures.oldest_mint_timestamp,
                    "oldest_age_seconds": figures.oldest_age_seconds,
                }
                for status, figures in self.statuses.items()
            },
            "leases": {
                "live": self.live_leases,
                "expired": self.expired_leases,
                "waiting_retry": self.retry_waits,
            },
            "failed_by_reason": dict(self.failed_by_reason),
        }


def read_token_stats(session: Session) -> TokenStats:
    from glisk_cli.models import Token  # the models load on first use (docs/architecture.md)

    counts = select(Token.status, func.count().label("tokens")).group_by(Token.status).cte()
    oldest = (
        select(Token.mint_timestamp)
        .where(Token.status == counts.c.status)
        .order_by(Token.mint_timestamp)
        .limit(1)
        .lateral()
    )
    reason = func.coalesce(Token.error_data["reason"].astext, "unknown")
    with translate_errors():
        per_status = session.execute(
            select(
                counts.c.status,
                counts.c.tokens,
                oldest.c.mint_timestamp,
                func.extract("epoch", func.now() - oldest.c.mint_timestamp),
            ).select_from(counts.join(oldest, true()))
        ).all()
        now, held = func.statement_timestamp(), Token.lease_id.is_not(None)
        with planned(session, THROUGH_INDEXES):  # the lease index, whatever the statistics say
            live, expired, waiting = session.execute(
                select(
                    func.count().filter(held, Token.lease_expires_at >= now),
                    func.count().filter(held, Token.lease_expires_at < now),
                    func.count().filter(Token.lease_id.is_(None), Token.lease_expires_at >= now),
                ).where(Token.lease_expires_at.is_not(None))
            ).one()
        failures = session.execute(
            select(reason, func.count())
            .where(Token.status == literal_column("'failed'"))
            .group_by(reason)
        ).all()
    statuses = {status: StatusFigures() for status in TokenStatus}
    for status, count, oldest_mint, age in per_status:
        statuses[status] = StatusFigures(count, oldest_mint, round(float(age), 3))
    return TokenStats(
        statuses=statuses,
        live_leases=live,
        expired_leases=expired,
        retry_waits=waiting,
        failed_by_reason={str(name): count for name, count in failures},
    )
