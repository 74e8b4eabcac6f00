"""How tokens look to a person: lists sized to the terminal, a token's story, the stats table.

`--json` documents are built in `tokens.py` and never pass through here.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from glisk_cli.cli import humanize
from glisk_cli.cli.output import print_record, print_table, say_data

if TYPE_CHECKING:
    from glisk_cli.models import Token
    from glisk_cli.repositories import TokenStats
    from glisk_cli.repositories.token_records import ClaimedToken

WIDE = 100  # from this many columns on, lists show more
STALLED_AFTER = timedelta(hours=1)  # a token waiting longer than this is coloured as stalled


def width() -> int:
    return shutil.get_terminal_size((80, 24)).columns


def print_tokens(tokens: Sequence[Token | ClaimedToken], *, held: bool = False) -> None:
    """One line per token: id, status, who holds it and for how long, attempts (and, on a wide
    terminal, when it was minted); `held` (just claimed or renewed, by the caller): its whole
    lease id instead of the holder."""
    now = humanize.now()
    rows = []
    for token in tokens:
        lease = humanize.lease(token.lease_expires_at, token.claimed_by, now)
        rows.append(
            {
                "token": token.token_id,
                "status": token.status.value,
                "minted": humanize.timestamp(token.mint_timestamp),
                "holder": humanize.middle(token.claimed_by, 18),
                "lease": lease,
                "tries": token.attempts,
                "lease_id": token.lease_id,
                "_style": "red" if lease.startswith("expired") else None,
            }
        )
    if held:
        print_table(rows, ["token", "status", "lease", "tries", "lease_id"], elastic="status")
        return
    columns = ["token", "status", "holder", "lease", "tries"]
    if width() >= WIDE:
        columns.insert(2, "minted")
    print_table(rows, columns)


def print_token(token: Token, attempts: Sequence[dict[str, Any]] | None = None) -> None:
    """A token's story: every field (full values), then its attempts from the history tables."""
    now = humanize.now()
    record = {
        "token": token.token_id,
        "status": token.status.value,
        "id": token.id,
        "author": token.author_id,
        "minter": token.minter_address,
        "minted": humanize.timestamp(token.mint_timestamp),
        "image path": token.image_path,
        "image cid": token.image_cid,
        "metadata cid": token.metadata_cid,
        "reveal tx": token.reveal_tx_hash,
        "holder": token.claimed_by,
        "lease id": token.lease_id,
        "lease": humanize.lease(token.lease_expires_at, token.claimed_by, now),
        "attempts": token.attempts,
        "error": token.error_data,
        "checkpoint": token.checkpoint,
        "created": humanize.timestamp(token.created_at),
        "updated": humanize.timestamp(token.updated_at),
    }
    print_record(record, title=f"token {token.token_id}")
    if attempts is None:
        return
    if not attempts:
        say_data("no attempts recorded")
        return
    rows = [
        {
            "stage": attempt["stage"],
            "started": humanize.timestamp(attempt["started"]),
            "took": humanize.duration(attempt["finished"] - attempt["started"])
            if attempt["finished"]
            else "-",
            "outcome": attempt["outcome"],
            "error": humanize.end(humanize.first_line(attempt["error"]), 24)
            if attempt["error"]
            else "-",
        }
        for attempt in attempts
    ]
    print_table(rows, ["stage", "started", "took", "outcome", "error"], title="attempts")


def print_stats(report: TokenStats) -> None:
    """Tokens per status and how long the oldest has waited, then leases and failures; stalled
    work (expired leases, a token waiting over an hour) in colour on a terminal."""
    rows = []
    for status, figures in report.statuses.items():
        age = figures.oldest_age_seconds
        stalled = age is not None and age > STALLED_AFTER.total_seconds()
        rows.append(
            {
                "status": status.value,
                "tokens": f"{figures.count:,}",
                "oldest": humanize.duration(age) if age is not None else "-",
                "since": humanize.timestamp(figures.oldest_mint_timestamp),
                "_style": "yellow"
                if stalled and status.value not in ("revealed", "failed")
                else None,
            }
        )
    print_table(rows, ["status", "tokens", "oldest", "since"])
    leases = (
        f"leases: {report.live_leases:,} live, {report.expired_leases:,} expired, "
        f"{report.retry_waits:,} waiting to retry"
    )
    say_data(leases, style="red" if report.expired_leases else None)
    failures = ", ".join(f"{reason} {count:,}" for reason, count in report.failed_by_reason.items())
    say_data(f"failed by reason: {failures or 'none'}")
