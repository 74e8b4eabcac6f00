"""TokenReads: tokens_s0 as operators and the seed's API read it — lookups, listings, a token's
attempts from the history tables, and the stats — returning ORM models."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from glisk_cli import models
from glisk_cli.errors import NotFound
from glisk_cli.pipeline import TokenStatus
from glisk_cli.repositories.base import TableRepository
from glisk_cli.repositories.token_stats import TokenStats, read_token_stats

if TYPE_CHECKING:
    from glisk_cli.models import Token


class TokenReads(TableRepository["Token"]):
    """The reads of `uow.tokens`; the models load when one is first asked for."""

    @property
    def model(self) -> type[Token]:
        return models.Token

    def get_by_token_id(self, token_id: int) -> Token | None:
        """The token with on-chain id `token_id` (served by its unique index)."""
        return self._execute(
            select(models.Token).where(models.Token.token_id == token_id)
        ).scalar_one_or_none()

    def require(self, token_id: int) -> Token:
        token = self.get_by_token_id(token_id)
        if token is None:
            raise NotFound(f"token {token_id} not found")
        return token

    def get_by_author(self, author_id: uuid.UUID, limit: int = 100) -> Sequence[Token]:
        query = (
            select(models.Token)
            .where(models.Token.author_id == author_id)
            .order_by(models.Token.mint_timestamp)
        )
        return self._execute(query.limit(limit)).scalars().all()

    def get_by_status(self, status: TokenStatus, limit: int = 100) -> Sequence[Token]:
        """Tokens in `status`, oldest mint first (served by the (status, mint_timestamp) index)."""
        query = (
            select(models.Token)
            .where(models.Token.status == status)
            .order_by(models.Token.mint_timestamp)
        )
        return self._execute(query.limit(limit)).scalars().all()

    def list(
        self,
        statuses: Sequence[TokenStatus] = (),
        author_id: uuid.UUID | None = None,
        limit: int = 50,
        after_token_id: int | None = None,
    ) -> Sequence[Token]:
        """One page of tokens by on-chain id; the next page starts after the last id shown
        (keyset pagination: every page costs the same, however deep)."""
        query = select(models.Token).order_by(models.Token.token_id).limit(limit)
        if statuses:
            query = query.where(models.Token.status.in_(statuses))
        if author_id is not None:
            query = query.where(models.Token.author_id == author_id)
        if after_token_id is not None:
            query = query.where(models.Token.token_id > after_token_id)
        return self._execute(query).scalars().all()

    def attempts(self, token_uuid: uuid.UUID) -> list[dict[str, Any]]:
        """The token's attempts from the history tables, oldest first: each with its stage,
        when it started and finished, its outcome and its error (`glisk tokens show`)."""
        found: list[dict[str, Any]] = []
        jobs = select(models.ImageGenerationJob).where(
            models.ImageGenerationJob.token_id == token_uuid
        )
        for job in self._execute(jobs).scalars():
            found.append(
                _attempt("generation", job.created_at, job.completed_at, job.status, job.error_data)
            )
        uploads = select(models.IPFSUploadRecord).where(
            models.IPFSUploadRecord.token_id == token_uuid
        )
        for up in self._execute(uploads).scalars():
            stage = f"upload {up.record_type}"
            found.append(_attempt(stage, up.created_at, up.completed_at, up.status, up.error_data))
        # `@>`: what the GIN index on token_ids answers (migration 0010).
        reveals = select(models.RevealTransaction).where(
            models.RevealTransaction.token_ids.contains([token_uuid])
        )
        for tx in self._execute(reveals).scalars():
            found.append(
                _attempt(
                    "reveal", tx.created_at, tx.confirmed_at, tx.status, tx.error_data, tx.tx_hash
                )
            )
        return sorted(found, key=lambda attempt: attempt["started"])

    def stats(self) -> TokenStats:
        """Counts and ages per status, leases, and failures by reason (`token_stats.py`)."""
        return read_token_stats(self.session)


def _attempt(
    stage: str,
    started: datetime,
    finished: datetime | None,
    outcome: str,
    error: Any,
    tx_hash: str | None = None,
) -> dict[str, Any]:
    return {
        "stage": stage,
        "started": started,
        "finished": finished,
        "outcome": outcome,
        "error": error,
        "tx_hash": tx_hash,  # the reveal transaction's, once sent
    }
