"""`uow.pipeline_view.read()`, what `glisk top` shows: per stage waiting, in flight and done,
workers and their leases, failures — read from indexes only, so cheap on a million tokens."""

from datetime import timedelta

from sqlalchemy import text

from glisk_cli.pipeline import StageName
from glisk_cli.repositories import pipeline_view_sql
from tests.conftest import seed_tokens
from tests.plans import INDEX_READS, table_reads
from tests.top_pipeline import seed_busy_pipeline, stall_worker

LEASE = timedelta(minutes=15)


def test_an_empty_pipeline_reads_as_nothing_waiting_and_nothing_done(uow_factory) -> None:
    with uow_factory() as uow:
        reading = uow.pipeline_view.read(LEASE)
    for stage in reading.stages.values():
        assert (stage.waiting, stage.in_flight, sum(stage.done_per_minute)) == (0, 0, 0)
        assert stage.oldest_waiting_mint is None
    assert (reading.workers, reading.failures_by_reason, reading.recent_failures) == ([], {}, [])


def test_a_busy_pipeline_reads_per_stage_per_worker_and_per_failure(
    session_factory, uow_factory
) -> None:
    seed_busy_pipeline(session_factory)
    with uow_factory() as uow:
        reading = uow.pipeline_view.read(LEASE)

    generation, upload, reveal = (reading.stages[stage] for stage in StageName)
    assert (generation.free, generation.retrying, generation.in_flight) == (30, 3, 4)
    assert generation.waiting == 33
    assert generation.free_exact
    assert (upload.waiting, upload.in_flight, reveal.waiting, reveal.in_flight) == (8, 2, 6, 0)
    assert (generation.done_per_minute[0], sum(generation.done_per_minute)) == (5, 60)
    assert (upload.done_per_minute[0], sum(upload.done_per_minute)) == (0, 40)
    assert sum(reveal.done_per_minute) == 30
    oldest = generation.oldest_waiting_mint
    assert oldest is not None
    assert timedelta(hours=2, minutes=58) < reading.at - oldest < timedelta(hours=3)  # token 1

    workers = {worker.name: worker for worker in reading.workers}
    assert set(workers) == {"w-gen", "w-up"}
    assert (workers["w-gen"].live, workers["w-gen"].expired) == (4, 0)
    assert workers["w-gen"].stages == {StageName.GENERATION}
    expiry, renewal = workers["w-gen"].soonest_expiry, workers["w-gen"].last_renewal
    assert expiry is not None
    assert renewal is not None
    assert timedelta(minutes=9) < expiry - reading.at <= timedelta(minutes=10)
    # its lease ends in 10 minutes of a 15-minute lease: renewed 5 minutes ago
    assert timedelta(minutes=5) <= reading.at - renewal < timedelta(minutes=6)

    assert reading.failures_by_reason == {"max_attempts": 3, "timeout": 1, "exit 1": 1}
    assert [f.stage for f in reading.recent_failures] == ["generation"] * 5
    assert [f.token_id for f in reading.recent_failures][:2] == [2, 1]
    assert reading.recent_failures[0].error["reason"] == "exit"


def test_a_stalled_worker_has_expired_leases_and_its_tokens_wait_again(
    session_factory, uow_factory
) -> None:
    seed_busy_pipeline(session_factory)
    stall_worker(session_factory, "w-gen")
    with uow_factory() as uow:
        reading = uow.pipeline_view.read(LEASE)
    stalled = next(worker for worker in reading.workers if worker.name == "w-gen")
    assert (stalled.live, stalled.expired, stalled.soonest_expiry) == (0, 4, None)
    assert stalled.last_renewal is not None
    assert reading.at - stalled.last_renewal >= timedelta(minutes=18)
    generation = reading.stages[StageName.GENERATION]
    assert (generation.in_flight, generation.expired, generation.waiting) == (0, 4, 37)


def test_a_queue_longer_than_the_cap_is_estimated_not_counted(
    session_factory, uow_factory, monkeypatch
) -> None:
    monkeypatch.setattr(pipeline_view_sql, "COUNT_CAP", 100)
    seed_tokens(session_factory, 1_000)
    with session_factory() as session, session.begin():
        session.execute(text("ANALYZE tokens_s0"))
    with uow_factory() as uow:
        generation = uow.pipeline_view.read(LEASE).stages[StageName.GENERATION]
    assert not generation.free_exact
    assert 500 <= generation.free <= 2_000


def test_every_statement_of_a_refresh_is_served_by_an_index(session_factory) -> None:
    # "Cheap on a big pipeline": with enough rows that a table scan would be the planner's
    # choice if it were the only way, no statement of a refresh scans a table or sorts one.
    seed_tokens(session_factory, 60_000, status="revealed")
    seed_tokens(session_factory, 30_000, first_id=100_001)
    seed_tokens(session_factory, 2_000, status="failed", first_id=200_001)
    with session_factory() as session, session.begin():
        session.execute(
            text(
                """
                INSERT INTO image_generation_jobs (token_id, service, status, completed_at)
                SELECT id, 'svc', CASE WHEN token_id % 50 = 0 THEN 'failed' ELSE 'succeeded' END,
                       now() - interval '2 days' + token_id * interval '1 second'
                FROM tokens_s0 WHERE status = 'revealed';
                INSERT INTO ipfs_upload_records (token_id, record_type, status, completed_at)
                SELECT id, 'metadata', 'succeeded', now() - interval '2 days'
                FROM tokens_s0 WHERE status = 'revealed';
                INSERT INTO reveal_transactions (token_ids, status, confirmed_at, created_at)
                SELECT ARRAY[gen_random_uuid()], 'confirmed',
                       now() - interval '3 days' + n * interval '1 second',
                       now() - interval '3 days'
                FROM generate_series(1, 20000) AS n;
                UPDATE tokens_s0 SET claimed_by = 'w', lease_id = gen_random_uuid(),
                    status = 'generating', lease_expires_at = now() + interval '1 minute'
                WHERE token_id BETWEEN 100001 AND 100100;
                """
            )
        )
    engine = session_factory.kw["bind"]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))

    with engine.connect() as connection:
        for statement in pipeline_view_sql.STATEMENTS:
            explain = f"EXPLAIN (FORMAT JSON) {statement}"
            plan = connection.exec_driver_sql(explain).scalar_one()[0]["Plan"]
            scans = table_reads(plan)
            assert scans, statement
            assert {kind for kind, _ in scans} <= INDEX_READS, scans
