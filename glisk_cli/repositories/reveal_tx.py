"""RevealTransactionRepository: reveal_transactions, batches of tokens revealed on chain."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from glisk_cli.models import RevealTransaction
from glisk_cli.repositories.base import Repository


class RevealTransactionRepository(Repository[RevealTransaction]):
    model = RevealTransaction

    def get_by_tx_hash(self, tx_hash: str) -> RevealTransaction | None:
        query = select(RevealTransaction).where(RevealTransaction.tx_hash == tx_hash)
        return self._execute(query).scalar_one_or_none()

    def get_by_status(self, status: str, limit: int = 100) -> Sequence[RevealTransaction]:
        """Transactions in `status`, oldest first (served by the status index)."""
        query = (
            select(RevealTransaction)
            .where(RevealTransaction.status == status)
            .order_by(RevealTransaction.created_at, RevealTransaction.id)
            .limit(limit)
        )
        return self._execute(query).scalars().all()

    def get_pending(self, limit: int = 100) -> Sequence[RevealTransaction]:
        """Transactions not yet sent: what the reveal sender picks up next."""
        return self.get_by_status("pending", limit)
