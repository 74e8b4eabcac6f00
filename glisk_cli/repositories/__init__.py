"""One repository per table. SQL lives here and nowhere else; repositories never commit.

Each repository's module loads when first asked for, so a command pays only for the
repositories it uses (docs/architecture.md, "A one-shot command loads what it uses").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glisk_cli.repositories.author import AuthorRepository
    from glisk_cli.repositories.image_job import ImageGenerationJobRepository
    from glisk_cli.repositories.ipfs_record import IPFSUploadRecordRepository
    from glisk_cli.repositories.mint_event import MintEventRepository
    from glisk_cli.repositories.reveal_tx import RevealTransactionRepository
    from glisk_cli.repositories.synthetic import SyntheticData
    from glisk_cli.repositories.system_state import SystemStateRepository
    from glisk_cli.repositories.token import TokenRepository
    from glisk_cli.repositories.token_stats import StatusFigures, TokenStats

_MODULE_OF = {
    "AuthorRepository": "author",
    "ImageGenerationJobRepository": "image_job",
    "IPFSUploadRecordRepository": "ipfs_record",
    "MintEventRepository": "mint_event",
    "RevealTransactionRepository": "reveal_tx",
    "SyntheticData": "synthetic",
    "SystemStateRepository": "system_state",
    "TokenRepository": "token",
    "StatusFigures": "token_stats",
    "TokenStats": "token_stats",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AuthorRepository",
    "IPFSUploadRecordRepository",
    "ImageGenerationJobRepository",
    "MintEventRepository",
    "RevealTransactionRepository",
    "StatusFigures",
    "SyntheticData",
    "SystemStateRepository",
    "TokenRepository",
    "TokenStats",
]
