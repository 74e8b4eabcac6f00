"""The Unit of Work: one transaction, the seven repositories that work inside it (DESIGN §5).

    uow_factory = create_uow_factory(setup_db_session(url, pool_size=10))
    with uow_factory() as uow:
        tokens = uow.tokens.claim(stage="generation", limit=10, worker="w1", lease=lease)

Leaving the block normally commits; an exception rolls everything back and propagates.
Repositories never commit on their own. Objects returned inside the block stay readable after it
(the session does not expire them on commit).
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from loguru import logger
from sqlalchemy.orm import Session, sessionmaker

from glisk_cli.repositories import (
    AuthorRepository,
    ImageGenerationJobRepository,
    IPFSUploadRecordRepository,
    MintEventRepository,
    RevealTransactionRepository,
    SystemStateRepository,
    TokenRepository,
)
from glisk_cli.repositories.base import translate_errors


class UnitOfWork:
    authors: AuthorRepository
    tokens: TokenRepository
    mint_events: MintEventRepository
    image_jobs: ImageGenerationJobRepository
    ipfs_records: IPFSUploadRecordRepository
    reveal_txs: RevealTransactionRepository
    system_state: SystemStateRepository

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("the Unit of Work is used outside its `with` block")
        return self._session

    def __enter__(self) -> UnitOfWork:
        session = self._session = self._session_factory()
        self.authors = AuthorRepository(session)
        self.tokens = TokenRepository(session)
        self.mint_events = MintEventRepository(session)
        self.image_jobs = ImageGenerationJobRepository(session)
        self.ipfs_records = IPFSUploadRecordRepository(session)
        self.reveal_txs = RevealTransactionRepository(session)
        self.system_state = SystemStateRepository(session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.commit()
            else:
                self.rollback(reason=exc_type.__name__)
        finally:
            self.session.close()
            self._session = None

    def commit(self) -> None:
        try:
            with translate_errors():
                self.session.commit()
        except BaseException as error:
            self.rollback(reason=type(error).__name__)
            raise
        logger.info("transaction.committed")

    def rollback(self, reason: str = "requested") -> None:
        self.session.rollback()
        logger.info("transaction.rolled_back", reason=reason)


def create_uow_factory(session_factory: sessionmaker[Session]) -> Callable[[], UnitOfWork]:
    """A callable that makes a fresh Unit of Work (one transaction) each time it is called."""

    def make_uow() -> UnitOfWork:
        return UnitOfWork(session_factory)

    return make_uow
