"""The Unit of Work commits on success, rolls back on any exception, and logs both."""

import pytest
from loguru import logger

from glisk_cli.errors import Conflict
from glisk_cli.models import Author

WALLET = "0x1111111111111111111111111111111111111111"


def test_uow_commits_on_successful_exit(uow_factory) -> None:
    with uow_factory() as uow:
        author = uow.authors.add(Author(wallet_address=WALLET, prompt_text="kept"))
        author_id = author.id
    with uow_factory() as uow:
        stored = uow.authors.get_by_id(author_id)
    assert stored is not None
    assert stored.prompt_text == "kept"
    assert author.wallet_address == WALLET  # still readable after the UoW closed


def test_uow_rollback_on_exception(uow_factory) -> None:
    def add_then_crash() -> None:
        with uow_factory() as uow:
            uow.authors.add(Author(wallet_address=WALLET, prompt_text="discarded"))
            raise RuntimeError("worker crashed")

    with pytest.raises(RuntimeError, match="worker crashed"):
        add_then_crash()
    with uow_factory() as uow:
        assert uow.authors.get_by_wallet(WALLET) is None


def test_rollback_leaves_no_partial_write_of_several_operations(uow_factory) -> None:
    def write_three_things_the_last_a_duplicate() -> None:
        with uow_factory() as uow:
            uow.system_state.set_state("cursor", 41)
            uow.authors.add(Author(wallet_address=WALLET, prompt_text="one"))
            uow.authors.add(
                Author(wallet_address=WALLET.upper().replace("0X", "0x"), prompt_text="2")
            )

    with pytest.raises(Conflict, match="already exists"):
        write_three_things_the_last_a_duplicate()
    with uow_factory() as uow:
        assert uow.system_state.get_state("cursor", default=None) is None
        assert uow.authors.get_by_wallet(WALLET) is None


def test_commit_and_rollback_are_logged_at_info(uow_factory) -> None:
    messages: list[str] = []
    logger.enable("glisk_cli")  # a library is silent until its application asks (logging.py)
    # Only glisk's own records: an earlier test in this process may have left SQLAlchemy's
    # statement log on (a command run with LOG_LEVEL=DEBUG), whose records come through too.
    sink = logger.add(
        lambda message: messages.append(message.record["message"]),
        level="INFO",
        filter="glisk_cli",
    )
    try:
        with uow_factory() as uow:
            uow.system_state.set_state("k", 1)
        with pytest.raises(ValueError, match="no"), uow_factory():
            raise ValueError("no")
    finally:
        logger.remove(sink)
    assert messages == ["transaction.committed", "transaction.rolled_back"]
