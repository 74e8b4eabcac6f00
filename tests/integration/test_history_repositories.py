"""The history repositories (image jobs, IPFS uploads, reveal transactions) on a real PostgreSQL."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from glisk_cli.errors import Conflict, InvalidInput, NotFound
from glisk_cli.models import ImageGenerationJob, IPFSUploadRecord, RevealTransaction
from glisk_cli.uow import UnitOfWork
from tests.conftest import expire_leases, seed_tokens

UowFactory = Callable[[], UnitOfWork]
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def tx_hash(n: int) -> str:
    return f"0x{n:064x}"


def token_uuids(session_factory: sessionmaker[Session], count: int) -> list[uuid.UUID]:
    """Seed `count` tokens and return their row ids (tokens_s0.id), in token_id order."""
    seed_tokens(session_factory, count)
    with session_factory() as session:
        rows = session.execute(text("SELECT id FROM tokens_s0 ORDER BY token_id"))
        return [row[0] for row in rows]


def test_added_rows_are_found_by_id_with_server_defaults_filled(
    session_factory: sessionmaker[Session], uow_factory: UowFactory
) -> None:
    [token] = token_uuids(session_factory, 1)
    with uow_factory() as uow:
        job = uow.image_jobs.add(ImageGenerationJob(token_id=token, service="replicate"))
        record = uow.ipfs_records.add(IPFSUploadRecord(token_id=token, record_type="image"))
        reveal = uow.reveal_txs.add(RevealTransaction(token_ids=[token]))
        ids = (job.id, record.id, reveal.id)
    with uow_factory() as uow:
        stored_job = uow.image_jobs.get_by_id(ids[0])
        stored_record = uow.ipfs_records.get_by_id(ids[1])
        stored_reveal = uow.reveal_txs.get_by_id(ids[2])
        unknown = uuid.uuid4()
        assert uow.image_jobs.get_by_id(unknown) is None
        assert uow.ipfs_records.get_by_id(unknown) is None
        assert uow.reveal_txs.get_by_id(unknown) is None
    assert stored_job is not None
    assert stored_record is not None
    assert stored_reveal is not None
    assert (stored_job.token_id, stored_job.service) == (token, "replicate")
    assert (stored_record.token_id, stored_record.record_type) == (token, "image")
    assert stored_reveal.token_ids == [token]
    assert stored_reveal.tx_hash is None
    for row in (stored_job, stored_record, stored_reveal):
        assert row.status == "pending"
        assert row.created_at.utcoffset() == timedelta(0)
        assert abs(row.created_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert stored_job.retry_count == 0
    assert stored_record.retry_count == 0
    assert stored_job.completed_at is None
    assert stored_record.completed_at is None


def test_image_jobs_of_a_token_come_oldest_first_and_latest_is_the_newest(
    session_factory: sessionmaker[Session], uow_factory: UowFactory
) -> None:
    token, other, idle = token_uuids(session_factory, 3)
    with uow_factory() as uow:
        # Added out of time order; the other token's job is newer than all of `token`'s.
        for service, when in (("second", at(1)), ("third", at(2)), ("first", at(0))):
            uow.image_jobs.add(ImageGenerationJob(token_id=token, service=service, created_at=when))
        uow.image_jobs.add(ImageGenerationJob(token_id=other, service="other", created_at=at(9)))
    with uow_factory() as uow:
        jobs = uow.image_jobs.get_by_token(token)
        latest = uow.image_jobs.get_latest_by_token(token)
        assert [job.service for job in jobs] == ["first", "second", "third"]
        assert latest is not None
        assert latest.service == "third"
        assert [job.service for job in uow.image_jobs.get_by_token(other)] == ["other"]
        assert uow.image_jobs.get_by_token(idle) == []
        assert uow.image_jobs.get_latest_by_token(idle) is None
    with uow_factory() as uow:  # a later transaction's server-default now() is newer still
        uow.image_jobs.add(ImageGenerationJob(token_id=token, service="retry"))
    with uow_factory() as uow:
        latest = uow.image_jobs.get_latest_by_token(token)
    assert latest is not None
    assert latest.service == "retry"


def test_ipfs_records_of_a_token_filter_by_record_type(
    session_factory: sessionmaker[Session], uow_factory: UowFactory
) -> None:
    token, other = token_uuids(session_factory, 2)
    with uow_factory() as uow:
        for cid, record_type, when in (
            ("image-2", "image", at(2)),
            ("meta-1", "metadata", at(1)),
            ("image-0", "image", at(0)),
        ):
            uow.ipfs_records.add(
                IPFSUploadRecord(token_id=token, record_type=record_type, cid=cid, created_at=when)
            )
        uow.ipfs_records.add(IPFSUploadRecord(token_id=other, record_type="image", cid="x"))
    with uow_factory() as uow:
        every = uow.ipfs_records.get_by_token(token)
        images = uow.ipfs_records.get_by_token(token, record_type="image")
        metadata = uow.ipfs_records.get_by_token(token, record_type="metadata")
        others_metadata = uow.ipfs_records.get_by_token(other, record_type="metadata")
    assert [record.cid for record in every] == ["image-0", "meta-1", "image-2"]
    assert [record.cid for record in images] == ["image-0", "image-2"]
    assert [record.cid for record in metadata] == ["meta-1"]
    assert others_metadata == []


def test_reveal_transaction_is_found_by_tx_hash(
    session_factory: sessionmaker[Session], uow_factory: UowFactory
) -> None:
    tokens = token_uuids(session_factory, 3)
    with uow_factory() as uow:
        uow.reveal_txs.add(RevealTransaction(token_ids=tokens[:1], tx_hash=tx_hash(1)))
        uow.reveal_txs.add(
            RevealTransaction(
                token_ids=tokens,
                tx_hash=tx_hash(2),
                block_number=19_000_000_000,
                gas_price_gwei=Decimal("1.000000001"),
                status="sent",
            )
        )
    with uow_factory() as uow:
        found = uow.reveal_txs.get_by_tx_hash(tx_hash(2))
        assert uow.reveal_txs.get_by_tx_hash(tx_hash(3)) is None
    assert found is not None
    assert found.token_ids == tokens
    assert found.block_number == 19_000_000_000
    assert found.gas_price_gwei == Decimal("1.000000001")
    assert found.status == "sent"


def test_reveal_transactions_by_status_come_oldest_first_within_the_limit(
    uow_factory: UowFactory,
) -> None:
    token = uuid.uuid4()  # token_ids is a plain array, no foreign key
    with uow_factory() as uow:
        for n, status, seconds in (
            (1, "pending", 2),
            (2, "confirmed", -1),
            (3, "pending", 0),
            (4, "sent", 1),
            (5, "pending", 3),
        ):
            uow.reveal_txs.add(
                RevealTransaction(
                    token_ids=[token], tx_hash=tx_hash(n), status=status, created_at=at(seconds)
                )
            )
    with uow_factory() as uow:
        pending = [tx.tx_hash for tx in uow.reveal_txs.get_by_status("pending")]
        first_two = [tx.tx_hash for tx in uow.reveal_txs.get_by_status("pending", limit=2)]
        sent = [tx.tx_hash for tx in uow.reveal_txs.get_by_status("sent")]
        next_up = [tx.tx_hash for tx in uow.reveal_txs.get_pending()]
        oldest = [tx.tx_hash for tx in uow.reveal_txs.get_pending(limit=1)]
    assert pending == [tx_hash(3), tx_hash(1), tx_hash(5)]
    assert first_two == [tx_hash(3), tx_hash(1)]
    assert sent == [tx_hash(4)]
    assert next_up == pending
    assert oldest == [tx_hash(3)]


AddRow = Callable[[UnitOfWork, uuid.UUID], object]


@pytest.mark.parametrize(
    "add_row",
    [
        lambda uow, t: uow.image_jobs.add(ImageGenerationJob(token_id=t, service="s", status="x")),
        lambda uow, t: uow.ipfs_records.add(IPFSUploadRecord(token_id=t, record_type="video")),
        lambda uow, t: uow.ipfs_records.add(
            IPFSUploadRecord(token_id=t, record_type="image", status="x")
        ),
        lambda uow, t: uow.reveal_txs.add(RevealTransaction(token_ids=[t], status="mined")),
    ],
    ids=["job-status", "ipfs-record-type", "ipfs-status", "reveal-status"],
)
def test_check_constraints_refuse_unknown_status_and_record_type(
    session_factory: sessionmaker[Session], uow_factory: UowFactory, add_row: AddRow
) -> None:
    [token] = token_uuids(session_factory, 1)
    with pytest.raises(InvalidInput, match="check constraint"), uow_factory() as uow:
        add_row(uow, token)


def test_duplicate_reveal_tx_hash_is_a_conflict(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        uow.reveal_txs.add(RevealTransaction(token_ids=[uuid.uuid4()], tx_hash=tx_hash(7)))
    with pytest.raises(Conflict, match="already exists"), uow_factory() as uow:
        uow.reveal_txs.add(RevealTransaction(token_ids=[uuid.uuid4()], tx_hash=tx_hash(7)))
    with uow_factory() as uow:
        assert len(uow.reveal_txs.get_by_status("pending")) == 1  # the first one only


@pytest.mark.parametrize(
    "add_row",
    [
        lambda uow, t: uow.image_jobs.add(ImageGenerationJob(token_id=t, service="s")),
        lambda uow, t: uow.ipfs_records.add(IPFSUploadRecord(token_id=t, record_type="image")),
    ],
    ids=["image-job", "ipfs-record"],
)
def test_row_naming_a_missing_token_is_not_found(uow_factory: UowFactory, add_row: AddRow) -> None:
    with pytest.raises(NotFound, match="does not exist"), uow_factory() as uow:
        add_row(uow, uuid.uuid4())


def test_deleting_a_token_deletes_its_jobs_and_upload_records(
    session_factory: sessionmaker[Session], uow_factory: UowFactory
) -> None:
    doomed, kept = token_uuids(session_factory, 2)
    with uow_factory() as uow:
        for token in (doomed, kept):
            uow.image_jobs.add(ImageGenerationJob(token_id=token, service="s"))
            uow.ipfs_records.add(IPFSUploadRecord(token_id=token, record_type="metadata"))
    with session_factory() as session, session.begin():
        session.execute(text("DELETE FROM tokens_s0 WHERE id = :id"), {"id": doomed})
    with uow_factory() as uow:
        assert uow.image_jobs.get_by_token(doomed) == []
        assert uow.ipfs_records.get_by_token(doomed) == []
        assert uow.image_jobs.get_latest_by_token(doomed) is None
        assert len(uow.image_jobs.get_by_token(kept)) == 1
        assert len(uow.ipfs_records.get_by_token(kept)) == 1


def _job_rows(session_factory: sessionmaker[Session]) -> list[tuple[str, str | None]]:
    with session_factory() as session:
        rows = session.execute(
            text(
                "SELECT status, error_data->>'reason' FROM image_generation_jobs "
                "ORDER BY created_at, status"
            )
        )
        return [(row[0], row[1]) for row in rows]


def test_an_attempt_a_dead_runner_left_running_ends_abandoned_when_its_token_is_claimed_again(
    session_factory: sessionmaker[Session], uow_factory: UowFactory
) -> None:
    seed_tokens(session_factory, 1)
    with uow_factory() as uow:
        first = uow.tokens.claim("generation", 1, "w1", timedelta(minutes=1))
        uow.image_jobs.start_running(first, "gen.py")
    expire_leases(session_factory)  # w1 died (kill -9): its attempt was never ended
    with uow_factory() as uow:
        second = uow.tokens.claim("generation", 1, "w2", timedelta(minutes=1))
        uow.image_jobs.start_running(second, "gen.py")
        uow.image_jobs.start_running(second, "gen.py")  # a retried write changes nothing
    assert _job_rows(session_factory) == [("failed", "abandoned"), ("running", None)]


def test_reap_ends_the_attempts_a_dead_runner_left_running(
    session_factory: sessionmaker[Session], uow_factory: UowFactory
) -> None:
    seed_tokens(session_factory, 1)
    with uow_factory() as uow:
        claimed = uow.tokens.claim("generation", 1, "w1", timedelta(minutes=1), max_attempts=1)
        uow.image_jobs.start_running(claimed, "gen.py")
    expire_leases(session_factory)
    with uow_factory() as uow:
        assert [token.token_id for token in uow.tokens.reap(max_attempts=1)] == [1]
    assert _job_rows(session_factory) == [("failed", "abandoned")]
