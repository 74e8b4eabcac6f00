"""A library worker the pooler tests run as a process of its own:

    python -m tests.pooler.claim_loop URL NAME SECONDS POOLER

claims 10 generation tokens, renews their lease and advances them, over and over for SECONDS,
through `Database(URL, pooler=POOLER)`. Prints one JSON line at the end: the token ids it
advanced, or the first error (its type and message) and exits 1.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from typing import cast

from glisk_cli.db import Database
from glisk_cli.db.connection_setup import PoolerMode
from glisk_cli.uow import create_uow_factory

LEASE = timedelta(seconds=30)


def main(url: str, name: str, seconds: float, pooler: str) -> int:
    database = Database(url, pool_size=1, pooler=cast(PoolerMode, pooler))
    uow_factory = create_uow_factory(database)
    advanced: list[int] = []
    rounds = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            rounds += 1
            with uow_factory() as uow:
                claimed = uow.tokens.claim("generation", 10, name, LEASE)
            if not claimed:
                continue
            with uow_factory() as uow:
                held = uow.tokens.renew(claimed, LEASE)
            with uow_factory() as uow:
                result = uow.tokens.advance(
                    [(t, {"image_path": f"{t.token_id}.png"}) for t in held]
                )
            advanced += result.moved
    except Exception as error:
        print(json.dumps({"error": type(error).__name__, "message": str(error), "rounds": rounds}))
        return 1
    finally:
        database.dispose()
    print(json.dumps({"advanced": advanced, "rounds": rounds}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]))
