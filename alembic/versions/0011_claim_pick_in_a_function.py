"""the claim's pick in a function planned by the queue indexes, whatever the statistics say

`glisk_pick(stage, limit)` locks and returns up to `limit` of the stage's claimable tokens:
those whose lease ran out first (the lease index), then the oldest mints nobody holds (the
stage's queue index, in its order). It is declared with sequential scans, bitmap scans and sorts
switched off, so each source is read through its index and stops at its LIMIT even on a table
never analysed, where the planner would guess a handful of queued tokens and sort them all; the
settings hold only while the function runs. It is declared to return one row, so that the
claim's UPDATE reaches the picked tokens by their keys whatever the table's size. Its plans are
generic (`plan_cache_mode`): planned once per session, for any limit. `glisk_admit` gets
sequential scans off the same way for its count of running jobs (docs/architecture.md, "Plans
that need no statistics").

The statuses are written in as literals, per stage, so that the partial indexes match.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 14:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each stage's claimable statuses: where its tokens wait, and its in-flight status.
_CLAIMABLE = {
    "generation": "('detected', 'generating')",
    "upload": "('uploading')",
    "reveal": "('ready')",
}

# The locks are FOR UPDATE SKIP LOCKED: concurrent claimers skip rows another claim is locking
# instead of queueing behind it, and the locks last until the transaction ends. The free source
# is read only for what the expired one did not supply, so the function locks exactly the tokens
# it returns. Its snapshot is newer than the calling statement's: a token the caller cannot see
# yet stays locked but unchanged, and claimable again when the caller's transaction ends.
_SOURCES = """
        RETURN QUERY SELECT id FROM tokens_s0
            WHERE status IN {claimable} AND lease_expires_at < statement_timestamp()
            LIMIT p_limit FOR UPDATE SKIP LOCKED;
        GET DIAGNOSTICS taken = ROW_COUNT;
        IF taken < p_limit THEN
            RETURN QUERY SELECT id FROM tokens_s0
                WHERE status IN {claimable} AND lease_expires_at IS NULL
                ORDER BY mint_timestamp LIMIT p_limit - taken FOR UPDATE SKIP LOCKED;
        END IF;"""

_BRANCHES = "".join(
    f"    WHEN '{stage}' THEN{_SOURCES.format(claimable=claimable)}\n"
    for stage, claimable in _CLAIMABLE.items()
)
_PICK = f"""
CREATE FUNCTION glisk_pick(p_stage text, p_limit integer) RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE ROWS 1
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    taken integer;
BEGIN
    CASE p_stage
{_BRANCHES}    END CASE;
END
$$
"""

_ADMIT = "glisk_admit(text, integer, token_status)"


def upgrade() -> None:
    op.execute(_PICK)
    op.execute(f"ALTER FUNCTION {_ADMIT} SET enable_seqscan = off")


def downgrade() -> None:
    op.execute(f"ALTER FUNCTION {_ADMIT} RESET enable_seqscan")
    op.execute("DROP FUNCTION glisk_pick(text, integer)")
