"""The seven tables of the GLISK pipeline, as SQLAlchemy 2.0 declarative models.

`Base.metadata` is what Alembic compares against; `SCHEMA_REVISION` is the migration these
models correspond to (the head of alembic/versions, checked by a test), which lets commands check
the schema without loading Alembic.
"""

from glisk_cli.models.author import WALLET_PATTERN, Author, InvalidWalletAddress, validate_wallet
from glisk_cli.models.base import Base, NaiveDatetimeError
from glisk_cli.models.image_job import IMAGE_JOB_STATUSES, ImageGenerationJob
from glisk_cli.models.ipfs_record import IPFS_RECORD_TYPES, IPFS_UPLOAD_STATUSES, IPFSUploadRecord
from glisk_cli.models.mint_event import MintEvent
from glisk_cli.models.reveal_tx import REVEAL_TX_STATUSES, RevealTransaction
from glisk_cli.models.system_state import SystemState
from glisk_cli.models.token import (
    TERMINAL_STATUSES,
    InvalidStateTransition,
    Token,
    TokenStatus,
)

SCHEMA_REVISION = "0006"

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
    "SystemState",
    "Token",
    "TokenStatus",
    "validate_wallet",
]
