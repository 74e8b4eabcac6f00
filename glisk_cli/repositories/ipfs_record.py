"""IPFSUploadRecordRepository: ipfs_upload_records, a token's image and metadata uploads."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from glisk_cli.models import IPFSUploadRecord
from glisk_cli.repositories.base import Repository


class IPFSUploadRecordRepository(Repository[IPFSUploadRecord]):
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
