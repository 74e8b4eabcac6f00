"""Worker commands the runner tests start: small Python programs speaking the runner's
protocol, which write what they saw to a journal so the tests can count every run.

    python -m tests.work.jobs generate JOURNAL [SLEEP_S]   answer {"image_path": …}
    python -m tests.work.jobs fail JOURNAL                 write to stderr, exit 3
    python -m tests.work.jobs upload JOURNAL               answer both CIDs
    python -m tests.work.jobs reveal JOURNAL               one tx_hash for the whole batch
    python -m tests.work.jobs flood JOURNAL                10 MB on stdout and stderr
    python -m tests.work.jobs hang JOURNAL                 start a grandchild, then sleep
    python -m tests.work.jobs slot JOURNAL DIR N SLEEP_S   hold one of N slots, then answer
    python -m tests.work.jobs busy JOURNAL DELAY           answer {"retry_after": DELAY} once
    python -m tests.work.jobs resume JOURNAL               checkpoint, then (2nd try) answer
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
    elif kind == "slot":  # a stage's concurrency limit, seen from the jobs
        slots, limit, sleep = Path(args[0]), int(args[1]), float(args[2])
        held = _hold_a_slot(slots, limit)
        _note(journal, event="slot", slot=held, pid=os.getpid(), at=time.monotonic())
        time.sleep(sleep)
        _note(journal, event="slot_done", pid=os.getpid(), at=time.monotonic())
        answer = {"image_path": f"images/{tokens[0]['token_id']}.png", "tx_hash": "0x" + "cd" * 32}
    elif kind == "busy":  # a service answering 429 to the first job that asks
        if len([e for e in journal_entries(journal) if e["event"] == "start"]) == 1:
            answer = {"retry_after": args[0]}
        else:
            answer = {"image_path": f"images/{tokens[0]['token_id']}.png"}
    elif kind == "resume":  # a paid service: checkpoint its job id, resume it on the next try
        from glisk_cli.checkpoint import record

        token = tokens[0]
        said = token["checkpoint"] or {}
        _note(journal, event="saw", token_id=token["token_id"], checkpoint=token["checkpoint"])
        if not said:
            external = f"pred-{token['token_id']}"
            tx_hash = "0x" + f"{token['token_id']:064x}"
            record({"external_job_id": external, "tx_hash": tx_hash})
            if token["status"] == "generating":
                sys.exit(9)  # the service took the job; this attempt dies before its answer
        else:
            external, tx_hash = said["external_job_id"], said["tx_hash"]
        answer = {"image_path": f"{external}.png", "tx_hash": tx_hash}
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


def _hold_a_slot(slots: Path, limit: int) -> int | None:
    """Lock one of `limit` slot files, held until this process ends (the kernel lets go of a
    dead process's locks): the slot's number, or None when all of them stay held — more jobs
    than the limit alive at once. A slot freed while this one looked past it is found on a
    second look; a real excess lasts as long as the jobs do."""
    files = [open(slots / f"slot-{n}", "a") for n in range(limit)]  # noqa: SIM115 — held to the end
    for _ in range(5):
        for n, file in enumerate(files):
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            _HELD.append(file)
            return n
        time.sleep(0.01)
    return None


_HELD: list[Any] = []


if __name__ == "__main__":
    main(*sys.argv[1:])
