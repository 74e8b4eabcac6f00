"""authors: the people whose prompts become NFT images, identified by wallet address."""

from __future__ import annotations

import re

from sqlalchemy import CheckConstraint, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column, validates

from glisk_cli.errors import InvalidInput
from glisk_cli.models.base import Address, Base, DefaultNow, UUIDPrimaryKey

WALLET_PATTERN = r"^0x[0-9a-fA-F]{40}$"
_WALLET = re.compile(WALLET_PATTERN)


class InvalidWalletAddress(InvalidInput, ValueError):
    """A wallet address is not `0x` followed by 40 hexadecimal digits."""


def validate_wallet(value: str) -> str:
    if not isinstance(value, str) or not _WALLET.fullmatch(value):
        raise InvalidWalletAddress(
            f"invalid wallet address {value!r}: expected 0x followed by 40 hexadecimal digits"
        )
    return value


class Author(Base):
    __tablename__ = "authors"
    __table_args__ = (
        CheckConstraint(f"wallet_address ~ '{WALLET_PATTERN}'", name="wallet_address_format"),
    )

    id: Mapped[UUIDPrimaryKey]
    wallet_address: Mapped[Address] = mapped_column(unique=True)
    twitter_handle: Mapped[str | None] = mapped_column(String(255))
    farcaster_handle: Mapped[str | None] = mapped_column(String(255))
    prompt_text: Mapped[str]
    created_at: Mapped[DefaultNow]

    @validates("wallet_address")
    def _validate_wallet(self, _key: str, value: str) -> str:
        return validate_wallet(value)

    def __repr__(self) -> str:
        return f"Author(wallet_address={self.wallet_address!r})"


# Lookups are case-insensitive (EIP-55 checksums mix cases), so case variants of one wallet must
# not coexist; this index also serves get_by_wallet.
Index("uq_authors_lower_wallet_address", func.lower(Author.wallet_address), unique=True)
