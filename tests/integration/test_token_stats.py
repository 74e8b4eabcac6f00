"""`TokenRepository.stats()`: exact figures, read from indexes only (cheap at a million rows)."""

import json
from datetime import UTC, datetime

from sqlalchemy import event, text

from glisk_cli.pipeline import TokenStatus
from tests.conftest import seed_tokens


def test_stats_count_statuses_oldest_mints_leases_and_failure_reasons(
    session_factory, uow_factory
) -> None:
    seed_tokens(session_factory, 6)
    seed_tokens(session_factory, 3, status="revealed", first_id=101)
    with session_factory() as session, session.begin():
        session.execute(
            text(
                """
                UPDATE tokens_s0 SET
                    status = CASE WHEN token_id <= 2 THEN 'generating'::token_status
                                  ELSE 'failed'::token_status END,
                    claimed_by = CASE WHEN token_id <= 2 THEN 'w' END,
                    lease_id = CASE WHEN token_id <= 2 THEN gen_random_uuid() END,
                    lease_expires_at = CASE token_id WHEN 1 THEN now() + interval '1 hour'
                                                     WHEN 2 THEN now() - interval '1 hour' END,
                    error_data = CASE token_id WHEN 3 THEN '{"reason": "nsfw"}'::jsonb
                                               WHEN 4 THEN '{"reason": "nsfw"}'::jsonb
                                               WHEN 5 THEN '{"detail": "no reason given"}'::jsonb
                                 END
                WHERE token_id <= 5
                """
            )
        )

    with uow_factory() as uow:
        typed = uow.tokens.stats()
    assert (typed.total, typed.live_leases, typed.expired_leases) == (9, 1, 1)
    assert typed.statuses[TokenStatus.GENERATING].count == 2
    stats = typed.as_document()  # what `glisk tokens stats --json` prints

    counts = {status: entry["count"] for status, entry in stats["statuses"].items()}
    assert counts == {
        "detected": 1,
        "generating": 2,
        "uploading": 0,
        "ready": 0,
        "revealed": 3,
        "failed": 3,
    }
    assert stats["total"] == 9
    assert stats["leases"] == {"live": 1, "expired": 1, "waiting_retry": 0}
    assert stats["failed_by_reason"] == {"nsfw": 2, "unknown": 1}
    # seed_tokens mints token n at 2026-01-01 00:00:00 + n seconds
    assert stats["statuses"]["detected"]["oldest_mint_timestamp"] == datetime(
        2026, 1, 1, 0, 0, 6, tzinfo=UTC
    )
    assert stats["statuses"]["revealed"]["oldest_mint_timestamp"] == datetime(
        2026, 1, 1, 0, 1, 41, tzinfo=UTC
    )
    assert stats["statuses"]["uploading"] == {
        "count": 0,
        "oldest_mint_timestamp": None,
        "oldest_age_seconds": None,
    }


def test_stats_never_scan_the_table(session_factory, uow_factory) -> None:
    # "Cheap on a million rows": stats() reads indexes; only failed tokens' rows are fetched
    # (for their reason), never the rest of the table.
    seed_tokens(session_factory, 60_000, status="revealed")
    seed_tokens(session_factory, 30_000, first_id=100_001)
    seed_tokens(session_factory, 1_000, status="failed", first_id=200_001)
    engine = session_factory.kw["bind"]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE tokens_s0"))

    sent: list[tuple[str, dict]] = []

    def keep(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if "set_config" not in statement:  # the planner settings of a statement
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        with uow_factory() as uow:
            assert uow.tokens.stats().total == 91_000
    finally:
        event.remove(engine, "before_cursor_execute", keep)

    assert len(sent) == 3
    with engine.connect() as connection:
        for statement, parameters in sent:
            plan = json.dumps(
                connection.exec_driver_sql(
                    f"EXPLAIN (FORMAT JSON) {statement}", parameters
                ).scalar_one()
            )
            assert "Seq Scan" not in plan, plan
            if "failed" not in statement:
                assert '"Index Only Scan"' in plan, plan
                assert '"Node Type": "Index Scan"' not in plan, plan  # no row fetched
