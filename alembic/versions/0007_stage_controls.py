"""stage controls: fleet-wide pause, concurrency limit, rate limit and cooldown, enforced by the
claim statement itself

One row per stage in `stage_controls`, made by the first change of the stage's controls (a
stage without one has none). Every claim calls `glisk_admit(stage, jobs, in_flight)`
first, which says how many jobs the claim may start, and, when the stage has a rate limit,
`glisk_spend(stage, started)` last, which takes the started jobs out of the stage's token
bucket. Both are VOLATILE PL/pgSQL so that each of their statements reads a fresh snapshot: a
claim that waited for a lock sees what the claims before it committed, where the claim
statement's own snapshot, taken before the wait, would not (docs/architecture.md, "Flow control
in the claim").

Two advisory locks per stage, transaction-scoped (so they work behind a transaction pooler):
- "controls", shared by every claim and exclusive for a change of the controls: a pause, limit
  or cooldown waits for the claims already under way, and every claim after it sees it;
- "starts", exclusive, taken only by claims of a stage with a limit or rate: they count the jobs
  running and the bucket one at a time, so two can never both take the last slot.

The migration creates a table and three functions: it takes no lock on the tables workers
write, so it never blocks them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ADMIT = """
CREATE FUNCTION glisk_admit(p_stage text, p_jobs integer, p_in_flight token_status)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c stage_controls%ROWTYPE;
    admitted integer := p_jobs;
    running integer;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('glisk.controls'), hashtext(p_stage));
    SELECT * INTO c FROM stage_controls WHERE stage = p_stage;
    IF NOT FOUND THEN
        RETURN p_jobs;
    END IF;
    IF (c.paused_at IS NOT NULL
            AND (c.paused_until IS NULL OR c.paused_until > statement_timestamp()))
        OR c.cooldown_until > statement_timestamp() THEN
        RETURN 0;
    END IF;
    IF c.concurrency IS NULL AND c.rate_jobs IS NULL THEN
        RETURN p_jobs;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('glisk.starts'), hashtext(p_stage));
    IF c.concurrency IS NOT NULL THEN
        -- A job is a lease: its tokens share one lease id. A retry delay holds no lease id.
        SELECT count(DISTINCT lease_id) INTO running FROM tokens_s0
        WHERE status = p_in_flight AND lease_expires_at > statement_timestamp();
        admitted := least(admitted, greatest(c.concurrency - running, 0));
    END IF;
    IF c.rate_jobs IS NOT NULL THEN
        SELECT least(admitted, floor(glisk_bucket(s)))::integer INTO admitted
        FROM stage_controls s WHERE stage = p_stage;
    END IF;
    RETURN admitted;
END
$$
"""

# What the bucket holds now: what it held at bucket_at, refilled at the rate since, up to burst.
_BUCKET = """
CREATE FUNCTION glisk_bucket(s stage_controls) RETURNS double precision
LANGUAGE sql STABLE AS $$
    SELECT least(
        s.burst::double precision,
        s.bucket + s.rate_jobs::double precision / s.rate_seconds
            * greatest(extract(epoch FROM statement_timestamp() - s.bucket_at), 0)
    )
$$
"""

_SPEND = """
CREATE FUNCTION glisk_spend(p_stage text, p_started integer)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF p_started = 0 THEN
        RETURN 0;
    END IF;
    UPDATE stage_controls s
    SET bucket = glisk_bucket(s) - p_started, bucket_at = statement_timestamp()
    WHERE stage = p_stage AND rate_jobs IS NOT NULL;
    RETURN p_started;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "stage_controls",
        sa.Column("stage", sa.String(16), primary_key=True),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("concurrency", sa.Integer(), nullable=True),
        sa.Column("rate_jobs", sa.Integer(), nullable=True),
        sa.Column("rate_seconds", sa.Integer(), nullable=True),
        sa.Column("burst", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("bucket", sa.Double(), server_default=sa.text("0"), nullable=False),
        sa.Column("bucket_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.Column("cooldown_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cooldown_reason", sa.Text(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "stage IN ('generation', 'upload', 'reveal')", name=op.f("ck_stage_controls_stage")
        ),
        sa.CheckConstraint("concurrency > 0", name=op.f("ck_stage_controls_concurrency")),
        sa.CheckConstraint(
            "(rate_jobs IS NULL) = (rate_seconds IS NULL) AND rate_jobs > 0 "
            "AND rate_seconds IN (1, 60)",
            name=op.f("ck_stage_controls_rate"),
        ),
        sa.CheckConstraint("burst > 0", name=op.f("ck_stage_controls_burst")),
        sa.PrimaryKeyConstraint("stage", name=op.f("pk_stage_controls")),
    )
    for function in (_BUCKET, _ADMIT, _SPEND):
        op.execute(function)


def downgrade() -> None:
    op.execute("DROP FUNCTION glisk_spend(text, integer)")
    op.execute("DROP FUNCTION glisk_admit(text, integer, token_status)")
    op.execute("DROP FUNCTION glisk_bucket(stage_controls)")
    op.drop_table("stage_controls")
