"""The Unit of Work: one transaction, the repositories that work inside it.

    database = Database.from_settings()           # the same settings as the `glisk` command
    uow_factory = create_uow_factory(database)    # or create_uow_factory(setup_db_session(url))
    with uow_factory() as uow:
        tokens = uow.tokens.claim(stage="generation", limit=10, worker="w1")

Leaving the block normally commits; an exception rolls everything back and propagates.
Repositories never commit on their own. Objects returned inside the block stay readable after it
(the session does not expire them on commit).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from glisk_cli.db.handle import DEFAULT_POLICY, Database
from glisk_cli.db.opening import Opening
from glisk_cli.db.transaction import PooledTransaction, SessionTransaction, Transaction
from glisk_cli.logging import logger
from glisk_cli.policy import QueuePolicy

if TYPE_CHECKING:
    from glisk_cli.repositories import (
        AuthorRepository,
        ImageGenerationJobRepository,
        IPFSUploadRecordRepository,
        MintEventRepository,
        RevealTransactionRepository,
        SyntheticData,
        SystemStateRepository,
        TokenRepository,
    )
    from glisk_cli.repositories.pipeline_view import PipelineView
    from glisk_cli.repositories.stage_controls import StageControls
    from glisk_cli.repositories.token_why import TokenWhy


class UnitOfWork:
    """One transaction and the repositories working in it (each made, and its module loaded,
    when first used: docs/architecture.md, "A one-shot command loads what it uses")."""

    def __init__(
        self,
        session_factory: sessionmaker[Session] | Callable[[], Transaction],
        policy: QueuePolicy = DEFAULT_POLICY,
    ) -> None:
        """Units of Work on the seed's `session_factory` (or on any maker of Transactions, as
        `create_uow_factory` gives them), applying `policy` to the token queue."""
        self._begin = (
            _transactions(session_factory)
            if isinstance(session_factory, sessionmaker)
            else session_factory
        )
        self.policy = policy
        self._transaction: Transaction | None = None

    @property
    def transaction(self) -> Transaction:
        if self._transaction is None:
            raise RuntimeError("the Unit of Work is used outside its `with` block")
        return self._transaction

    @property
    def session(self) -> Session:
        """The ORM Session of this Unit of Work's transaction (made on first use)."""
        return self.transaction.session

    @cached_property
    def authors(self) -> AuthorRepository:
        from glisk_cli.repositories.author import AuthorRepository

        return AuthorRepository(self.transaction)

    @cached_property
    def tokens(self) -> TokenRepository:
        from glisk_cli.repositories.token import TokenRepository

        return TokenRepository(self.transaction, self.policy)

    @cached_property
    def stages(self) -> StageControls:
        from glisk_cli.repositories.stage_controls import StageControls

        return StageControls(self.transaction)

    @cached_property
    def why(self) -> TokenWhy:
        """Why a token is not moving (`glisk tokens why`)."""
        from glisk_cli.repositories.token_why import TokenWhy

        return TokenWhy(self.transaction, self.policy)

    @cached_property
    def mint_events(self) -> MintEventRepository:
        from glisk_cli.repositories.mint_event import MintEventRepository

        return MintEventRepository(self.transaction)

    @cached_property
    def image_jobs(self) -> ImageGenerationJobRepository:
        from glisk_cli.repositories.image_job import ImageGenerationJobRepository

        return ImageGenerationJobRepository(self.transaction)

    @cached_property
    def ipfs_records(self) -> IPFSUploadRecordRepository:
        from glisk_cli.repositories.ipfs_record import IPFSUploadRecordRepository

        return IPFSUploadRecordRepository(self.transaction)

    @cached_property
    def reveal_txs(self) -> RevealTransactionRepository:
        from glisk_cli.repositories.reveal_tx import RevealTransactionRepository

        return RevealTransactionRepository(self.transaction)

    @cached_property
    def system_state(self) -> SystemStateRepository:
        from glisk_cli.repositories.system_state import SystemStateRepository

        return SystemStateRepository(self.transaction)

    @cached_property
    def pipeline_view(self) -> PipelineView:
        from glisk_cli.repositories.pipeline_view import PipelineView

        return PipelineView(self.transaction)

    @cached_property
    def synthetic(self) -> SyntheticData:
        from glisk_cli.repositories.synthetic import SyntheticData

        return SyntheticData(self.transaction)

    def __enter__(self) -> UnitOfWork:
        for name in _REPOSITORIES:  # those of an earlier `with` block worked in its transaction
            self.__dict__.pop(name, None)
        self._transaction = self._begin()
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
            self.transaction.close()
            self._transaction = None

    def commit(self) -> None:
        try:
            self.transaction.commit()
        except BaseException as error:
            self.rollback(reason=type(error).__name__)
            raise
        logger.info("transaction.committed")

    def rollback(self, reason: str = "requested") -> None:
        self.transaction.rollback()
        logger.info("transaction.rolled_back", reason=reason)


_REPOSITORIES = [
    name for name, value in vars(UnitOfWork).items() if isinstance(value, cached_property)
]


def create_uow_factory(
    database: Database | sessionmaker[Session], *, require_revision: str | None = None
) -> Callable[[], UnitOfWork]:
    """A callable that makes a fresh Unit of Work (one transaction) each time it is called.

    Given a `Database` (see `Database.from_settings`), the Units of Work apply its queue policy
    (GLISK_MAX_ATTEMPTS, GLISK_LEASE) and its pooler mode; given a bare session factory, glisk's
    defaults. With `require_revision`, the first Unit of Work refuses (SchemaNotAtHead) unless
    the database is migrated to it, checked in its own first statement.
    """
    if isinstance(database, Database):
        begin, policy = _transactions(database, require_revision), database.policy
    else:
        begin, policy = _transactions(database), DEFAULT_POLICY

    def make_uow() -> UnitOfWork:
        return UnitOfWork(begin, policy)

    return make_uow


def _transactions(
    source: Database | sessionmaker[Session], require_revision: str | None = None
) -> Callable[[], Transaction]:
    """What makes each Unit of Work's transaction: a Database's, on its pool (with its kept
    connection, and an opening statement for its pooler settings and `require_revision`); the
    seed's session factory's, adapted here: the transaction of a Session it makes, committed
    by that Session (so its configuration and events apply as the caller set them)."""
    if isinstance(source, Database):
        engine, sessions, kept = source.engine, source.sessions, source.kept
        settings = source.transaction_settings
        opening = Opening(settings, require_revision) if settings or require_revision else None
        return lambda: PooledTransaction(engine, sessions, opening, kept)
    return lambda: SessionTransaction(source())
