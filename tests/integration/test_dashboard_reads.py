"""What the web view reads (`cli/dashboard_reads.py`): the pipeline as `glisk top --json` has
it, a token's page with its attempts and why it waits — and every statement either page sends
is served by an index, so a page costs the same on a million tokens as on a thousand."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event, text

from glisk_cli.cli.dashboard_reads import pipeline_reader, token_reader
from glisk_cli.db import transaction
from tests.conftest import seed_tokens
from tests.plans import INDEX_READS, table_reads
from tests.top_pipeline import seed_busy_pipeline

LEASE = timedelta(minutes=15)
# A row per stage at most, whatever the pipeline holds: read whole, as the claim reads it.
BOUNDED_TABLES = {"stage_controls"}


def _pipeline(uow_factory):
    return pipeline_reader(uow_factory, lambda: "0009", url="db", lease=LEASE, interval=3)


def test_the_pipeline_reads_as_glisk_top_json_has_it(session_factory, uow_factory) -> None:
    seed_busy_pipeline(session_factory)
    document = _pipeline(uow_factory)()
    generation = document["stages"]["generation"]
    assert (generation["waiting"], generation["in_flight"]) == (33, 4)
    assert {worker["name"] for worker in document["workers"]} == {"w-gen", "w-up"}
    assert document["failures"]["last_hour_by_reason"]["max_attempts"] == 3


def test_a_tokens_page_has_its_fields_author_attempts_and_why(session_factory, uow_factory) -> None:
    seed_busy_pipeline(session_factory)
    read = token_reader(uow_factory)
    page = read(2)
    assert page is not None
    assert page["token"]["token_id"] == 2
    assert page["author"]["prompt_text"] == "seed"
    [failed] = page["attempts"]
    assert (failed["stage"], failed["outcome"]) == ("generation", "failed")
    assert "hunter2" not in failed["message"]  # one redacted line, as glisk top shows it
    assert page["why"]["reason"] == "queued"
    revealed = read(51)
    assert revealed is not None
    reveal = next(a for a in revealed["attempts"] if a["stage"] == "reveal")
    assert reveal["tx_hash"] == "0x" + "0" * 64
    assert read(10_000) is None


def test_every_statement_of_both_pages_is_served_by_an_index(
    session_factory, uow_factory, monkeypatch
) -> None:
    # Enough rows that a table scan would be the planner's choice were it the only way.
    seed_tokens(session_factory, 20_000, status="revealed")
    seed_tokens(session_factory, 10_000, first_id=100_001)
    with session_factory() as session, session.begin():
        session.execute(
            text(
                """
                INSERT INTO authors (wallet_address, prompt_text)
                SELECT '0x' || md5(n::text) || 'abcdef01', 'prompt ' || n
                FROM generate_series(1, 10000) AS n;
                INSERT INTO image_generation_jobs (token_id, service, status, completed_at)
                SELECT id, 'svc', 'succeeded', now() - interval '2 days' FROM tokens_s0;
                INSERT INTO ipfs_upload_records (token_id, record_type, status, completed_at)
                SELECT id, 'metadata', 'succeeded', now() - interval '2 days'
                FROM tokens_s0 WHERE status = 'revealed';
                INSERT INTO reveal_transactions (token_ids, status, confirmed_at)
                SELECT array_agg(id), 'confirmed', now() - interval '2 days'
                FROM tokens_s0 WHERE status = 'revealed' GROUP BY token_id / 10;
                UPDATE tokens_s0 SET claimed_by = 'w', lease_id = gen_random_uuid(),
                    status = 'generating', lease_expires_at = now() + interval '1 minute'
                WHERE token_id BETWEEN 100001 AND 100010;
                """
            )
        )
    engine = session_factory.kw["bind"]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))

    sent: list[tuple[str, Any]] = []
    driver_rows = transaction.driver_rows

    def recorded(connection, engine, sql, params, planner=None):
        sent.append((sql, dict(params)))
        return driver_rows(connection, engine, sql, params, planner)

    def orm(_conn, _cursor, statement, parameters, _context, _many) -> None:
        sent.append((statement, parameters))

    monkeypatch.setattr(transaction, "driver_rows", recorded)
    event.listen(engine, "before_cursor_execute", orm)
    try:
        _pipeline(uow_factory)()
        read = token_reader(uow_factory)
        for token_id in (5, 100_001, 105_000):  # revealed, held, queued
            assert read(token_id) is not None
    finally:
        event.remove(engine, "before_cursor_execute", orm)

    assert len(sent) > 10
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        for statement, params in sent:
            if statement.lstrip().upper().startswith("EXPLAIN"):
                continue  # the planner's estimate of a long queue: no rows read
            cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", params)
            [([plan],)] = cursor.fetchall()
            scans = table_reads(plan["Plan"])
            kinds = {kind for kind, table in scans if table not in BOUNDED_TABLES}
            assert kinds <= INDEX_READS, (statement, scans)
