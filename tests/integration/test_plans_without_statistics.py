"""Right after a big drop — tokens inserted by plain SQL into a table never analysed — a claim
reads its queue index in order and only as far as it takes, and the live view, the stats and
a runner's backlog reach leases and queues through their indexes: no plan waits for statistics
(docs/architecture.md, "Plans that need no statistics")."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import text

from glisk_cli.errors import InvalidInput
from glisk_cli.pipeline import stage_named
from glisk_cli.repositories.pipeline_view_sql import COUNT_CAP
from glisk_cli.repositories.token_sql import IN_INDEX_ORDER
from glisk_cli.uow import create_uow_factory
from tests.conftest import index_reads
from tests.plans import plan_nodes

QUEUE = "ix_tokens_s0_generation_queue"
LEASED = 6


@pytest.fixture(
    params=[
        # With no statistics the planner estimates the rows from the room they take, so 25,000
        # tokens with a long image path look like a drop of 300,000 to it (and choose the same
        # plans), at a tenth of the inserting; the drop just passes the live view's count cap.
        pytest.param((25_000, 1_500), id="25k-looking-like-300k"),
        pytest.param((300_000, 0), id="300k", marks=pytest.mark.soak),  # seconds to insert
    ]
)
def big_drop(request, session_factory) -> int:
    """How many detected tokens were inserted by plain SQL into a table autovacuum leaves alone,
    so that nothing analyses it while the test runs; the last LEASED are leased, half of the
    leases expired."""
    drop, padding = request.param
    with session_factory() as session, session.begin():
        session.execute(text("ALTER TABLE tokens_s0 SET (autovacuum_enabled = false)"))
        session.execute(
            text(
                "INSERT INTO authors (wallet_address, prompt_text) "
                "VALUES ('0x00000000000000000000000000000000000000aa', 'drop')"
            )
        )
        session.execute(
            text(
                """
                INSERT INTO tokens_s0 (token_id, author_id, minter_address, mint_timestamp,
                                       image_path)
                SELECT n, (SELECT id FROM authors), '0x00000000000000000000000000000000000000bb',
                       timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second',
                       nullif(repeat('x', :padding), '')
                FROM generate_series(1, :drop) AS n
                """
            ),
            {"drop": drop, "padding": padding},
        )
    with session_factory() as session, session.begin():
        session.execute(
            text(
                "UPDATE tokens_s0 SET status = 'generating', claimed_by = 'w', "
                "lease_id = gen_random_uuid(), lease_expires_at = now() "
                "+ CASE WHEN token_id % 2 = 0 THEN interval '1 hour' ELSE interval '-1 hour' END "
                "WHERE token_id > :first",
            ),
            {"first": drop - LEASED},
        )
        analysed = session.execute(
            text(
                "SELECT last_analyze, last_autoanalyze, "
                "(SELECT count(*) FROM pg_stats WHERE tablename = 'tokens_s0') "
                "FROM pg_stat_user_tables WHERE relname = 'tokens_s0'"
            )
        ).one()
    assert tuple(analysed) == (None, None, 0)  # never analysed: the planner guesses
    return drop


def test_right_after_a_big_drop_claims_and_reads_stay_in_their_indexes(
    big_drop: int, session_factory, uow_factory
) -> None:
    with uow_factory() as uow:
        before = index_reads(uow.session)
        reading = uow.pipeline_view.read(timedelta(minutes=5))
        backlog = uow.tokens.backlog("generation")
        reads = index_reads(uow.session) - before
    generation = reading.stages[stage_named("generation").name]
    assert not generation.free_exact
    assert generation.free > COUNT_CAP  # what was counted, where the planner guesses a handful
    assert (backlog.waiting, backlog.delayed, backlog.in_flight) == (big_drop - LEASED, 0, LEASED)
    assert reads["seq_scan"] == 0, reads
    # The waiting tokens are counted in the queue index up to the cap, not all of them.
    assert reads[QUEUE] <= COUNT_CAP + 2, reads

    with uow_factory() as uow:
        before = index_reads(uow.session)
        stats = uow.tokens.stats()
        reads = index_reads(uow.session) - before
    assert (stats.live_leases, stats.expired_leases) == (3, 3)
    # Counting every status reads every row once; on a table never vacuumed an index-only scan
    # would visit every row as well, so a pass over the table may be the planner's choice for
    # that count. The leases and the failures come from their indexes.
    assert reads["seq_scan"] <= 1, reads
    assert reads["ix_tokens_s0_lease_expiry"] == LEASED, reads

    # The planner left to itself: it believes the queue holds a handful of tokens, so it reads
    # all of them into a sort. That is the case this is about.
    free = _plan(session_factory, FREE)
    kinds = [node["Node Type"] for node in plan_nodes(free)]
    assert "Sort" in kinds, kinds
    # Under the settings glisk plans its queue reads with (glisk_pick is declared with the
    # same), through the queue index in order.
    free = _plan(session_factory, FREE, IN_INDEX_ORDER.before)
    kinds = [node["Node Type"] for node in plan_nodes(free)]
    assert "Sort" not in kinds, kinds
    ordered = [n for n in plan_nodes(free) if n.get("Index Name") == QUEUE]
    assert [(n["Node Type"], n["Actual Rows"]) for n in ordered] == [("Index Scan", 100)]

    # What the library's claim reads, counted by the server: the expired leases first (three),
    # then the queue for the rest, no further, and each claimed token by its key.
    with uow_factory() as uow:
        before = index_reads(uow.session)
        claimed = uow.tokens.claim("generation", 100, "w1")
        reads = index_reads(uow.session) - before
    assert len(claimed) == 100
    assert reads["seq_scan"] == 0, reads
    assert reads[QUEUE] == 97, reads
    assert reads["ix_tokens_s0_lease_expiry"] == 3, reads
    # (the leased tokens' keys have an index entry for their version before the lease too)
    assert reads["pk_tokens_s0"] <= 100 + LEASED, reads


FREE = (
    "SELECT id FROM tokens_s0 WHERE status IN ('detected', 'generating') "
    "AND lease_expires_at IS NULL ORDER BY mint_timestamp LIMIT 100 FOR UPDATE SKIP LOCKED"
)


def _plan(session_factory, sql: str, settings: str | None = None) -> dict:
    """The plan of `sql` (EXPLAIN ANALYZE runs it; rolled back), under `settings` if given."""
    with session_factory() as session:
        connection = session.connection()
        if settings:
            connection.exec_driver_sql(settings)
        plan = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}").scalar_one()
        session.rollback()
    return plan[0]["Plan"]


def test_a_statement_failing_among_its_planner_settings_raises_its_own_error_quietly(
    database, caplog: pytest.LogCaptureFixture
) -> None:
    # The settings, the statement and their reset share a round trip; the statement's failure
    # may surface while the round trip is being sent or at its end, and either way it is the
    # error raised — with nothing logged, which would reach stderr beside a `--json` error.
    caplog.set_level(logging.WARNING, logger="psycopg")
    uow_factory = create_uow_factory(database)
    for _ in range(20):
        with pytest.raises(InvalidInput), uow_factory() as uow:
            uow.transaction.rows("SELECT 1 / 0", {}, IN_INDEX_ORDER)
    assert caplog.records == []
