"""Worker commands the runner tests start: small Python programs speaking the runner's
protocol, which write what they saw to a journal so the tests can count every run.

    python -m tests.work.jobs generate JOURNAL [SLEEP_S]   answer {"image_path": …}
    python -m tests.work.jobs fail JOURNAL                 write to stderr, exit 3
    python -m tests.work.jobs upload JOURNAL               answer both CIDs
    python -m tests.work.jobs reveal JOURNAL               one tx_hash for the whole batch
    python -m tests.work.jobs flood JOURNAL                10 MB on stdout and stderr
    python -m tests.work.jobs hang JOURNAL                 start a grandchild, then sleep
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]


def command(kind: str, journal: Path, *args: object) -> list[str]:
    """The argv that runs one of these jobs (after `glisk work STAGE --`)."""
    return [sys.executable, "-m", "tests.work.jobs", kind, str(journal), *map(str, args)]


def journal_entries(journal: Path) -> list[dict[str, Any]]:
    if not journal.exists():
        return []
    return [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]


def _note(journal: Path, **entry: object) -> None:
    with open(journal, "a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)  # whole lines, whichever job writes
        file.write(json.dumps(entry) + "\n")


def main(kind: str, journal_path: str, *args: str) -> None:
    journal = Path(journal_path)
    given = json.load(sys.stdin)
    tokens = given if isinstance(given, list) else [given]
    env = {
        key: os.environ.get(key)
        for key in ("GLISK_TOKEN_ID", "GLISK_STAGE", "GLISK_ATTEMPT", "GLISK_WORKER")
    }
    for token in tokens:
        _note(
            journal,
            event="start",
            kind=kind,
            token_id=token["token_id"],
            pid=os.getpid(),
            lease_id=token["lease_id"],
            status=token["status"],
            env=env,
        )
    if kind == "generate":
        time.sleep(float(args[0]) if args else 0)
        answer: Any = {"image_path": f"images/{tokens[0]['token_id']}.png", "service": "test"}
    elif kind == "fail":
        sys.stderr.write("the GPU caught fire\n")
        sys.exit(3)
    elif kind == "upload":
        answer = {
            "image_cid": f"bafy-image-{tokens[0]['token_id']}",
            "metadata_cid": f"bafy-meta-{tokens[0]['token_id']}",
        }
    elif kind == "reveal":
        answer = {"tx_hash": "0x" + "ab" * 32, "block_number": 7, "gas_price_gwei": "1.5"}
    elif kind == "flood":  # megabytes on both streams, then a valid answer too late to count
        block = "x" * 65536
        for _ in range(160):
            sys.stdout.write(block)
            sys.stderr.write(block)
        answer = {"image_path": "never-read"}
    elif kind == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        _note(journal, event="child", pid=child.pid)
        time.sleep(600)
        return
    else:
        raise SystemExit(f"unknown job {kind}")
    for token in tokens:
        _note(journal, event="done", token_id=token["token_id"], pid=os.getpid())
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:])
