"""The tables of the GLISK pipeline, the seed's seven and the stages' flow control, as SQLAlchemy
2.0 declarative models.

`Base.metadata` is what Alembic compares against; `SCHEMA_REVISION` is the migration these
models correspond to (the head of alembic/versions, checked by a test), which lets commands check
the schema without loading Alembic.

The models load on first use: reading any name below but `SCHEMA_REVISION` imports every
table module at once, so `Base.metadata` always holds every table and the ORM always finds every
class. Commands that send driver SQL only (`glisk state get`, `glisk tokens claim`) never pay for
the declarative classes (docs/architecture.md, "A one-shot command loads what it uses").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glisk_cli.models.author import (
        WALLET_PATTERN,
        Author,
        InvalidWalletAddress,
        validate_wallet,
    )
    from glisk_cli.models.base import Base, NaiveDatetimeError
    from glisk_cli.models.image_job import IMAGE_JOB_STATUSES, ImageGenerationJob
    from glisk_cli.models.ipfs_record import (
        IPFS_RECORD_TYPES,
        IPFS_UPLOAD_STATUSES,
        IPFSUploadRecord,
    )
    from glisk_cli.models.mint_event import MintEvent
    from glisk_cli.models.reveal_tx import REVEAL_TX_STATUSES, RevealTransaction
    from glisk_cli.models.stage_control import StageControl
    from glisk_cli.models.system_state import SystemState
    from glisk_cli.models.token import (
        TERMINAL_STATUSES,
        InvalidStateTransition,
        Token,
        TokenStatus,
        token_status_enum,
    )

SCHEMA_REVISION = "0011"

# Where each name lives; the table modules, in an order that declares referenced tables first.
_HOMES = {
    "author": ("WALLET_PATTERN", "Author", "InvalidWalletAddress", "validate_wallet"),
    "token": (
        "TERMINAL_STATUSES",
        "InvalidStateTransition",
        "Token",
        "TokenStatus",
        "token_status_enum",
    ),
    "image_job": ("IMAGE_JOB_STATUSES", "ImageGenerationJob"),
    "ipfs_record": ("IPFS_RECORD_TYPES", "IPFS_UPLOAD_STATUSES", "IPFSUploadRecord"),
    "mint_event": ("MintEvent",),
    "reveal_tx": ("REVEAL_TX_STATUSES", "RevealTransaction"),
    "system_state": ("SystemState",),
    "stage_control": ("StageControl",),
    "base": ("Base", "NaiveDatetimeError"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for table_module in _HOMES:
        importlib.import_module(f"{__name__}.{table_module}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later reads are plain attribute reads
    return value


__all__ = [
    "IMAGE_JOB_STATUSES",
    "IPFS_RECORD_TYPES",
    "IPFS_UPLOAD_STATUSES",
    "REVEAL_TX_STATUSES",
    "SCHEMA_REVISION",
    "TERMINAL_STATUSES",
    "WALLET_PATTERN",
    "Author",
    "Base",
    "IPFSUploadRecord",
    "ImageGenerationJob",
    "InvalidStateTransition",
    "InvalidWalletAddress",
    "MintEvent",
    "NaiveDatetimeError",
    "RevealTransaction",
    "StageControl",
    "SystemState",
    "Token",
    "TokenStatus",
    "token_status_enum",
    "validate_wallet",
]
