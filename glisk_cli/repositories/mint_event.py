"""MintEventRepository: mint_events, the on-chain logs already recorded."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert

from glisk_cli.models import MintEvent
from glisk_cli.repositories.base import TableRepository


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

    def add_if_absent(self, event: MintEvent) -> bool:
        """Record `event` unless (tx_hash, log_index) is recorded already; returns whether it was
        new. One INSERT … ON CONFLICT DO NOTHING, so two recorders racing on one log agree."""
        statement = (
            insert(MintEvent)
            .values(
                tx_hash=event.tx_hash,
                log_index=event.log_index,
                block_number=event.block_number,
                block_timestamp=event.block_timestamp,
                token_id=event.token_id,
            )
            .on_conflict_do_nothing(index_elements=["tx_hash", "log_index"])
            .returning(MintEvent.id)
        )
        return self._execute(statement).scalar_one_or_none() is not None
