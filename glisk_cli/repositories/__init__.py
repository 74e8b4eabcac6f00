"""One repository per table. SQL lives here and nowhere else; repositories never commit."""

from glisk_cli.repositories.author import AuthorRepository
from glisk_cli.repositories.image_job import ImageGenerationJobRepository
from glisk_cli.repositories.ipfs_record import IPFSUploadRecordRepository
from glisk_cli.repositories.mint_event import MintEventRepository
from glisk_cli.repositories.reveal_tx import RevealTransactionRepository
from glisk_cli.repositories.synthetic import SyntheticData
from glisk_cli.repositories.system_state import SystemStateRepository
from glisk_cli.repositories.token import TokenRepository
from glisk_cli.repositories.token_stats import StatusFigures, TokenStats

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
