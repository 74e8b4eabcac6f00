"""IPFSUploadRecordRepository: ipfs_upload_records, a token's image and metadata uploads."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select

from glisk_cli.models import IPFSUploadRecord
from glisk_cli.repositories.array_literal import array_literal
from glisk_cli.repositories.base import TableRepository


class UploadRecord(NamedTuple):
    """One finished upload: its row id (chosen by the caller, so a retried write adds no second
    row), the token (tokens_s0.id), image or metadata, and how it went."""

    id: uuid.UUID
    token_id: uuid.UUID
    record_type: str
    cid: str | None
    status: str
    retry_count: int
    error_data: dict[str, Any] | None
    started: datetime


_RECORD = """
INSERT INTO ipfs_upload_records
    (id, token_id, record_type, cid, status, retry_count, error_data, created_at, completed_at)
SELECT id, token_id, record_type, cid, status, retry_count, error_data, started,
       statement_timestamp()
FROM unnest(%(ids)s::uuid[], %(token_ids)s::uuid[], %(types)s::text[], %(cids)s::text[],
            %(statuses)s::text[], %(retries)s::int[], %(errors)s::jsonb[],
            %(started)s::timestamptz[])
    AS r(id, token_id, record_type, cid, status, retry_count, error_data, started)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""


class IPFSUploadRecordRepository(TableRepository[IPFSUploadRecord]):
    model = IPFSUploadRecord

    def get_by_token(
        self, token_id: uuid.UUID, record_type: str | None = None
    ) -> Sequence[IPFSUploadRecord]:
        """A token's uploads (tokens_s0.id), oldest first; only `record_type` ones if given."""
        query = select(IPFSUploadRecord).where(IPFSUploadRecord.token_id == token_id)
        if record_type is not None:
            query = query.where(IPFSUploadRecord.record_type == record_type)
        query = query.order_by(IPFSUploadRecord.created_at, IPFSUploadRecord.id)
        return self._execute(query).scalars().all()

    def record(self, records: Sequence[UploadRecord]) -> None:
        """Write finished uploads (`glisk work`), one statement for all of them."""
        if records:
            self.transaction.rows(
                _RECORD,
                {
                    "ids": array_literal(r.id for r in records),
                    "token_ids": array_literal(r.token_id for r in records),
                    "types": array_literal(r.record_type for r in records),
                    "cids": array_literal(r.cid for r in records),
                    "statuses": array_literal(r.status for r in records),
                    "retries": array_literal(r.retry_count for r in records),
                    "errors": array_literal(r.error_data for r in records),
                    "started": array_literal(r.started for r in records),
                },
            )
