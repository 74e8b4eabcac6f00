"""AuthorRepository: authors, looked up by wallet whatever its letter case."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select

from glisk_cli.models import Author
from glisk_cli.repositories.base import TableRepository


class AuthorRepository(TableRepository[Author]):
    model = Author

    def get_by_wallet(self, wallet_address: str) -> Author | None:
        """Case-insensitive: `lower(wallet_address)` is what the unique index on authors holds,
        so this is an index lookup, and `0xABC…` finds an author stored as `0xabc…`."""
        query = select(Author).where(func.lower(Author.wallet_address) == wallet_address.lower())
        return self._execute(query).scalar_one_or_none()

    def list_all(self, limit: int = 100, offset: int = 0) -> Sequence[Author]:
        """One page of authors, oldest first."""
        query = select(Author).order_by(Author.created_at, Author.id).limit(limit).offset(offset)
        return self._execute(query).scalars().all()
