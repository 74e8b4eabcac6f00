"""Worker processes the fault-injection tests start, kill and restart.

    python -m tests.faults.workers hold-locks URL N      lock N claimable rows, say so, then sleep
    python -m tests.faults.workers claim URL N LEASE_S   claim N tokens, print them, then sleep
    python -m tests.faults.workers loop URL NAME          claim and finish tokens until none left

Each prints one JSON object per line on stdout, flushed, so the test can follow it live.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta

from glisk_cli.db import setup_db_session
from glisk_cli.errors import DatabaseUnavailable
from glisk_cli.uow import create_uow_factory


def say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields, default=str) + "\n")
    sys.stdout.flush()


def hold_locks(url: str, count: int) -> None:
    """Lock rows FOR UPDATE SKIP LOCKED inside a transaction that never ends (until killed)."""
    uow_factory = create_uow_factory(setup_db_session(url, pool_size=1))
    with uow_factory() as uow:
        tokens = uow.tokens.get_pending_for_generation(limit=count)
        say(locked=[token.token_id for token in tokens])
        time.sleep(3600)


def claim_and_hang(url: str, count: int, lease_s: float) -> None:
    """Claim (committed), then hang as a worker stuck in its work would."""
    uow_factory = create_uow_factory(setup_db_session(url, pool_size=1))
    with uow_factory() as uow:
        tokens = uow.tokens.claim("generation", count, "doomed", timedelta(seconds=lease_s))
    say(claimed=[token.token_id for token in tokens])
    time.sleep(3600)


def claim_loop(url: str, name: str) -> None:
    """Claim small batches and finish their generation stage until the queue stays empty,
    riding out database outages: an unavailable database is reported, waited out, retried."""
    from glisk_cli.errors import Conflict
    from glisk_cli.models import TokenStatus

    factory = setup_db_session(url, pool_size=1, connect_timeout=timedelta(seconds=2))
    uow_factory = create_uow_factory(factory)
    empty_since: float | None = None
    while True:
        try:
            with uow_factory() as uow:
                tokens = uow.tokens.claim("generation", 5, name, timedelta(seconds=2))
            for token in tokens:
                try:
                    with uow_factory() as uow:
                        uow.tokens.transition(
                            token.token_id, TokenStatus.UPLOADING, worker=name, image_path="i"
                        )
                    say(done_token=token.token_id)
                except Conflict:
                    say(taken_over=token.token_id)
        except DatabaseUnavailable as error:
            say(unavailable=error.message)
            time.sleep(0.2)
            continue
        if tokens:
            empty_since = None
            continue
        empty_since = empty_since or time.monotonic()
        if time.monotonic() - empty_since > 3:  # longer than a lease: nothing can come back
            say(finished=True)
            return
        time.sleep(0.2)


if __name__ == "__main__":
    mode, url, *rest = sys.argv[1:]
    if mode == "hold-locks":
        hold_locks(url, int(rest[0]))
    elif mode == "claim":
        claim_and_hang(url, int(rest[0]), float(rest[1]))
    elif mode == "loop":
        claim_loop(url, rest[0])
    else:
        raise SystemExit(f"unknown mode {mode}")
