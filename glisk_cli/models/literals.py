"""SQL text derived from the vocabulary, shared by the models' partial indexes and the
repositories' hand-written statements.

It declares no table, so the workers' statements are built without loading the models
(docs/architecture.md, "A one-shot command loads what it uses").
"""

from __future__ import annotations

from collections.abc import Iterable

from glisk_cli.pipeline import TokenStatus

# A token's lease: who holds it, the fence its every later step must present, and until when. A
# move or a release ends it (a retry delay is a lease nobody holds: its time alone is set).
LEASE_COLUMNS = ("claimed_by", "lease_id", "lease_expires_at")


def status_in(statuses: Iterable[TokenStatus]) -> str:
    """SQL for `status IN (…)` with the statuses as literals (so partial indexes match)."""
    return f"status IN ({', '.join(repr(status.value) for status in statuses)})"
