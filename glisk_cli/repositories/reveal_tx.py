"""RevealTransactionRepository: reveal_transactions, batches of tokens revealed on chain."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import select

from glisk_cli.models import RevealTransaction
from glisk_cli.repositories.base import TableRepository


class RevealRecord(NamedTuple):
    """One reveal attempt's transaction: its row id (chosen by the caller, so a retried write
    adds no second row), the tokens (tokens_s0.id) it covers, and how it went."""

    id: uuid.UUID
    token_ids: list[uuid.UUID]
    tx_hash: str | None
    block_number: int | None
    gas_price_gwei: Decimal | None
    status: str
    started: datetime
    error_data: dict[str, Any] | None = None  # of a failed attempt: the job's words


# A transaction hash already recorded (the same transaction reported by a later attempt, say
# after a lost lease, or checkpointed as pending before its broadcast) gains the new tokens and
# moves on (pending → sent → confirmed, never back) instead of failing on the unique hash.
_RECORD = """
INSERT INTO reveal_transactions
    (id, token_ids, tx_hash, block_number, gas_price_gwei, status, created_at, confirmed_at,
     error_data)
SELECT %(id)s::uuid, %(token_ids)s::uuid[], %(tx_hash)s::text, %(block_number)s::bigint,
       %(gas_price_gwei)s::numeric, %(status)s::text, %(started)s::timestamptz,
       CASE WHEN %(status)s::text = 'confirmed' THEN statement_timestamp() END,
       %(error_data)s::jsonb
WHERE NOT EXISTS (SELECT 1 FROM reveal_transactions WHERE id = %(id)s::uuid)
ON CONFLICT (tx_hash) DO UPDATE SET
    token_ids = ARRAY(SELECT DISTINCT unnest(reveal_transactions.token_ids || excluded.token_ids)),
    status = CASE WHEN reveal_transactions.status = 'confirmed' THEN 'confirmed'
                  WHEN excluded.status IN ('sent', 'confirmed') THEN excluded.status
                  ELSE reveal_transactions.status END,
    block_number = coalesce(excluded.block_number, reveal_transactions.block_number),
    gas_price_gwei = coalesce(excluded.gas_price_gwei, reveal_transactions.gas_price_gwei),
    confirmed_at = coalesce(reveal_transactions.confirmed_at, excluded.confirmed_at)
RETURNING id
"""


class RevealTransactionRepository(TableRepository[RevealTransaction]):
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

    def record(self, reveal: RevealRecord) -> None:
        """Write one reveal attempt's transaction (`glisk work`)."""
        error = (
            None if reveal.error_data is None else json.dumps(reveal.error_data, ensure_ascii=False)
        )
        self.transaction.rows(_RECORD, {**reveal._asdict(), "error_data": error})
