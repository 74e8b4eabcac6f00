"""The migrated schema, read back from PostgreSQL's catalog: every table, column, type, index and
constraint the data model calls for, and migrations that go down and up cleanly."""

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from glisk_cli import migrations
from glisk_cli.pipeline import TokenStatus

EXPECTED_COLUMNS = {
    "authors": {
        "id": ("uuid", True, "gen_random_uuid()"),
        "wallet_address": ("character varying(42)", True, None),
        "twitter_handle": ("character varying(255)", False, None),
        "farcaster_handle": ("character varying(255)", False, None),
        "prompt_text": ("text", True, None),
        "created_at": ("timestamp with time zone", True, "now()"),
    },
    "tokens_s0": {
        "id": ("uuid", True, "gen_random_uuid()"),
        "token_id": ("integer", True, None),
        "author_id": ("uuid", True, None),
        "minter_address": ("character varying(42)", True, None),
        "status": ("token_status", True, "'detected'::token_status"),
        "mint_timestamp": ("timestamp with time zone", True, None),
        "image_path": ("text", False, None),
        "image_cid": ("text", False, None),
        "metadata_cid": ("text", False, None),
        "reveal_tx_hash": ("character varying(66)", False, None),
        "error_data": ("jsonb", False, None),
        "claimed_by": ("text", False, None),
        "lease_expires_at": ("timestamp with time zone", False, None),
        "attempts": ("integer", True, "0"),
        "lease_id": ("uuid", False, None),
        "checkpoint": ("jsonb", False, None),
        "created_at": ("timestamp with time zone", True, "now()"),
        "updated_at": ("timestamp with time zone", True, "now()"),
    },
    "mint_events": {
        "id": ("uuid", True, "gen_random_uuid()"),
        "tx_hash": ("character varying(66)", True, None),
        "log_index": ("integer", True, None),
        "block_number": ("bigint", True, None),
        "block_timestamp": ("timestamp with time zone", True, None),
        "token_id": ("integer", True, None),
        "detected_at": ("timestamp with time zone", True, "now()"),
    },
    "image_generation_jobs": {
        "id": ("uuid", True, "gen_random_uuid()"),
        "token_id": ("uuid", True, None),
        "service": ("character varying(50)", True, None),
        "status": ("character varying(20)", True, "'pending'::character varying"),
        "external_job_id": ("character varying(255)", False, None),
        "retry_count": ("integer", True, "0"),
        "error_data": ("jsonb", False, None),
        "created_at": ("timestamp with time zone", True, "now()"),
        "completed_at": ("timestamp with time zone", False, None),
    },
    "ipfs_upload_records": {
        "id": ("uuid", True, "gen_random_uuid()"),
        "token_id": ("uuid", True, None),
        "record_type": ("character varying(20)", True, None),
        "cid": ("text", False, None),
        "status": ("character varying(20)", True, "'pending'::character varying"),
        "retry_count": ("integer", True, "0"),
        "error_data": ("jsonb", False, None),
        "created_at": ("timestamp with time zone", True, "now()"),
        "completed_at": ("timestamp with time zone", False, None),
    },
    "reveal_transactions": {
        "id": ("uuid", True, "gen_random_uuid()"),
        "token_ids": ("uuid[]", True, None),
        "tx_hash": ("character varying(66)", False, None),
        "block_number": ("bigint", False, None),
        "gas_price_gwei": ("numeric", False, None),
        "status": ("character varying(20)", True, "'pending'::character varying"),
        "created_at": ("timestamp with time zone", True, "now()"),
        "confirmed_at": ("timestamp with time zone", False, None),
    },
    "system_state": {
        "key": ("character varying(255)", True, None),
        "state_value": ("jsonb", True, None),
        "updated_at": ("timestamp with time zone", True, "now()"),
    },
    "stage_controls": {
        "stage": ("character varying(16)", True, None),
        "paused_at": ("timestamp with time zone", False, None),
        "pause_reason": ("text", False, None),
        "paused_until": ("timestamp with time zone", False, None),
        "concurrency": ("integer", False, None),
        "rate_jobs": ("integer", False, None),
        "rate_seconds": ("integer", False, None),
        "burst": ("integer", True, "1"),
        "bucket": ("double precision", True, "0"),
        "bucket_at": ("timestamp with time zone", False, "now()"),
        "cooldown_until": ("timestamp with time zone", False, None),
        "cooldown_reason": ("text", False, None),
        "updated_at": ("timestamp with time zone", True, "now()"),
    },
}

EXPECTED_INDEXES = {
    "uq_authors_lower_wallet_address": "CREATE UNIQUE INDEX uq_authors_lower_wallet_address "
    "ON public.authors USING btree (lower((wallet_address)::text))",
    "ix_tokens_s0_status_mint_timestamp": "CREATE INDEX ix_tokens_s0_status_mint_timestamp "
    "ON public.tokens_s0 USING btree (status, mint_timestamp)",
    "ix_tokens_s0_generation_queue": "CREATE INDEX ix_tokens_s0_generation_queue "
    "ON public.tokens_s0 USING btree (mint_timestamp) WHERE ((lease_expires_at IS NULL) "
    "AND (status = ANY (ARRAY['detected'::token_status, 'generating'::token_status])))",
    "ix_tokens_s0_upload_reveal_queue": "CREATE INDEX ix_tokens_s0_upload_reveal_queue "
    "ON public.tokens_s0 USING btree (status, mint_timestamp) WHERE ((lease_expires_at IS NULL) "
    "AND (status = ANY (ARRAY['uploading'::token_status, 'ready'::token_status])))",
    "ix_tokens_s0_lease_expiry": "CREATE INDEX ix_tokens_s0_lease_expiry "
    "ON public.tokens_s0 USING btree (status, lease_expires_at) INCLUDE (lease_id) "
    "WHERE (lease_expires_at IS NOT NULL)",
    "ix_tokens_s0_status": "CREATE INDEX ix_tokens_s0_status "
    "ON public.tokens_s0 USING btree (status)",
    "ix_tokens_s0_author_id": "CREATE INDEX ix_tokens_s0_author_id "
    "ON public.tokens_s0 USING btree (author_id)",
    "ix_mint_events_block_number": "CREATE INDEX ix_mint_events_block_number "
    "ON public.mint_events USING btree (block_number)",
    "uq_mint_events_tx_hash_log_index": "CREATE UNIQUE INDEX uq_mint_events_tx_hash_log_index "
    "ON public.mint_events USING btree (tx_hash, log_index)",
    "ix_image_generation_jobs_token_id": "CREATE INDEX ix_image_generation_jobs_token_id "
    "ON public.image_generation_jobs USING btree (token_id)",
    "ix_ipfs_upload_records_token_id": "CREATE INDEX ix_ipfs_upload_records_token_id "
    "ON public.ipfs_upload_records USING btree (token_id)",
    "ix_reveal_transactions_status": "CREATE INDEX ix_reveal_transactions_status "
    "ON public.reveal_transactions USING btree (status)",
    "uq_reveal_transactions_tx_hash": "CREATE UNIQUE INDEX uq_reveal_transactions_tx_hash "
    "ON public.reveal_transactions USING btree (tx_hash)",
    # `glisk top`'s last hour of finished work and failures (0006)
    "ix_image_generation_jobs_finished": "CREATE INDEX ix_image_generation_jobs_finished "
    "ON public.image_generation_jobs USING btree (status, completed_at) "
    "WHERE (completed_at IS NOT NULL)",
    "ix_ipfs_upload_records_finished": "CREATE INDEX ix_ipfs_upload_records_finished "
    "ON public.ipfs_upload_records USING btree (status, record_type, completed_at) "
    "WHERE (completed_at IS NOT NULL)",
    "ix_reveal_transactions_confirmed": "CREATE INDEX ix_reveal_transactions_confirmed "
    "ON public.reveal_transactions USING btree (status, confirmed_at) "
    "WHERE (confirmed_at IS NOT NULL)",
    "ix_tokens_s0_failed_at": "CREATE INDEX ix_tokens_s0_failed_at "
    "ON public.tokens_s0 USING btree (updated_at) WHERE (status = 'failed'::token_status)",
}

EXPECTED_CONSTRAINTS = {
    "fk_tokens_s0_author_id_authors": "FOREIGN KEY (author_id) REFERENCES authors(id) "
    "ON DELETE RESTRICT",
    "fk_image_generation_jobs_token_id_tokens_s0": "FOREIGN KEY (token_id) "
    "REFERENCES tokens_s0(id) ON DELETE CASCADE",
    "fk_ipfs_upload_records_token_id_tokens_s0": "FOREIGN KEY (token_id) "
    "REFERENCES tokens_s0(id) ON DELETE CASCADE",
    "uq_authors_wallet_address": "UNIQUE (wallet_address)",
    "uq_tokens_s0_token_id": "UNIQUE (token_id)",
    "ck_authors_wallet_address_format": "CHECK (((wallet_address)::text ~ "
    "'^0x[0-9a-fA-F]{40}$'::text))",
    "ck_tokens_s0_attempts_not_negative": "CHECK ((attempts >= 0))",
    "ck_image_generation_jobs_status": "CHECK (((status)::text = ANY ((ARRAY['pending'::character "
    "varying, 'running'::character varying, 'succeeded'::character varying, 'failed'::character "
    "varying])::text[])))",
    "ck_ipfs_upload_records_record_type": "CHECK (((record_type)::text = ANY ((ARRAY['image'::"
    "character varying, 'metadata'::character varying])::text[])))",
    "ck_ipfs_upload_records_status": "CHECK (((status)::text = ANY ((ARRAY['pending'::character "
    "varying, 'uploading'::character varying, 'succeeded'::character varying, 'failed'::character "
    "varying])::text[])))",
    "ck_reveal_transactions_status": "CHECK (((status)::text = ANY ((ARRAY['pending'::character "
    "varying, 'sent'::character varying, 'confirmed'::character varying, 'failed'::character "
    "varying])::text[])))",
}


@pytest.fixture
def connection(migrated_url: str) -> Iterator[Connection]:
    engine = create_engine(migrated_url, poolclass=NullPool)
    with engine.connect() as conn:
        yield conn


def test_every_table_has_exactly_the_specified_columns(connection: Connection) -> None:
    rows = connection.execute(
        text(
            """
            SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   pg_get_expr(d.adbin, d.adrelid)
            FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
              AND c.relname <> 'alembic_version'
            """
        )
    ).all()
    actual: dict[str, dict[str, tuple[str, bool, str | None]]] = {}
    for table, column, type_, not_null, default in rows:
        actual.setdefault(table, {})[column] = (type_, not_null, default)
    assert actual == EXPECTED_COLUMNS


def test_indexes_serve_lookups_claims_and_uniqueness(connection: Connection) -> None:
    rows = connection.execute(
        text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
    ).all()
    indexes = dict(rows)
    for name, definition in EXPECTED_INDEXES.items():
        assert indexes.get(name) == definition
    primary_keys = {name for name in indexes if name.startswith("pk_")}
    assert primary_keys == {f"pk_{table}" for table in EXPECTED_COLUMNS}


def test_constraints_carry_the_specified_actions_and_checks(connection: Connection) -> None:
    rows = connection.execute(
        text(
            """
            SELECT con.conname, pg_get_constraintdef(con.oid)
            FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
            WHERE n.nspname = 'public'
            """
        )
    ).all()
    constraints = dict(rows)
    for name, definition in EXPECTED_CONSTRAINTS.items():
        assert constraints.get(name) == definition, name


def test_token_status_enum_has_the_pipeline_states_in_order(connection: Connection) -> None:
    labels = connection.execute(
        text(
            "SELECT enumlabel FROM pg_enum WHERE enumtypid = 'token_status'::regtype "
            "ORDER BY enumsortorder"
        )
    ).scalars()
    assert list(labels) == ["detected", "generating", "uploading", "ready", "revealed", "failed"]


def test_the_database_token_status_labels_are_the_vocabulary_modules_in_order(
    connection: Connection,
) -> None:
    # The migrations keep literal copies of the statuses; pipeline.TokenStatus is what the code
    # uses. A status added to one and not the other fails here.
    labels = connection.execute(text("SELECT enum_range(NULL::token_status)::text[]")).scalar_one()
    assert labels == [status.value for status in TokenStatus]


def test_tokens_table_is_tuned_as_a_queue(connection: Connection) -> None:
    options = connection.execute(
        text("SELECT reloptions FROM pg_class WHERE oid = 'tokens_s0'::regclass")
    ).scalar_one()
    assert "autovacuum_vacuum_scale_factor=0.02" in options
    assert "fillfactor=80" in options


def test_upgrade_then_downgrade_to_base_then_upgrade_again_is_clean(database_url: str) -> None:
    engine = create_engine(database_url, poolclass=NullPool)

    first = migrations.upgrade(engine)
    down = migrations.downgrade(engine, "base")
    with engine.connect() as conn:
        leftovers = conn.execute(
            text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' "
                "AND c.relname NOT IN ('alembic_version', 'alembic_version_pkc') "
                "AND c.relkind IN ('r', 'i', 'S')"
            )
        ).scalar_one()
        enum_left = conn.execute(text("SELECT to_regtype('token_status')")).scalar_one()
        functions_left = conn.execute(
            text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'glisk%'")
        ).scalar_one()
    again = migrations.upgrade(engine)

    revisions = ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0011"]
    assert [step.revision for step in first.steps] == revisions
    assert [step.direction for step in down.steps] == ["downgrade"] * 9
    assert down.after == ()
    assert leftovers == 0
    assert enum_left is None
    assert functions_left == 0
    assert again.after == ("0011",)


def test_schema_revision_constant_matches_the_migration_head() -> None:
    from glisk_cli.models import SCHEMA_REVISION

    assert migrations.head_revision() == SCHEMA_REVISION


def test_the_flow_control_migration_never_waits_for_running_workers(database_url: str) -> None:
    # A worker mid-transaction holds locks on tokens_s0 (a claim's row locks, a move's
    # updates); migration 0007 adds a table and functions and must not queue behind them.
    engine = create_engine(database_url, poolclass=NullPool)
    migrations.upgrade(engine, "0006")
    upgraded = threading.Event()

    def upgrade() -> None:
        migrations.upgrade(engine, "0007")
        upgraded.set()

    with engine.connect() as worker:
        worker.execute(text("LOCK TABLE tokens_s0 IN ROW EXCLUSIVE MODE"))
        thread = threading.Thread(target=upgrade, daemon=True)
        thread.start()
        done_while_held = upgraded.wait(20)
        worker.rollback()
    thread.join(20)
    engine.dispose()
    assert done_while_held


def test_the_checkpoint_column_waits_for_workers_without_holding_them_up(
    database_url: str,
) -> None:
    # Migration 0008 needs tokens_s0's exclusive lock for a moment. While a worker's transaction
    # holds the table, the migration must neither fail nor queue the statements of the other
    # workers behind its lock wait for long: it tries with a short lock_timeout, and again.
    engine = create_engine(database_url, poolclass=NullPool)
    migrations.upgrade(engine, "0007")
    done = threading.Event()
    slowest = [0.0]

    def upgrade() -> None:
        migrations.upgrade(engine)
        done.set()

    def other_worker() -> None:
        with engine.connect() as conn:
            while not done.is_set():
                started = time.monotonic()
                conn.execute(text("SELECT count(*) FROM tokens_s0")).scalar_one()
                conn.commit()
                slowest[0] = max(slowest[0], time.monotonic() - started)
                time.sleep(0.01)

    with engine.connect() as worker:
        worker.execute(text("LOCK TABLE tokens_s0 IN ROW EXCLUSIVE MODE"))
        threads = [threading.Thread(target=f, daemon=True) for f in (upgrade, other_worker)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        assert not done.is_set()  # it waits for the worker's transaction
        worker.rollback()
    assert done.wait(20)
    for thread in threads:
        thread.join(5)
    engine.dispose()
    assert slowest[0] < 0.6  # held up for at most one lock_timeout, never the worker's second
