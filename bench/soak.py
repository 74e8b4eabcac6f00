"""Chaos soak: the whole pipeline through the library while workers are SIGKILLed.

Eight worker processes (`--workers`) drive freshly seeded detected tokens (20,000 by default)
through every stage with the library a real worker imports — claim generation → transition to
uploading → claim upload → ready → claim reveal → revealed — under 2 s leases, while a chaos loop
SIGKILLs a random worker every 2 s and starts a replacement under a new worker id. The same run
without the chaos loop is the baseline; both run in one invocation, each on a freshly seeded
table, and the report gives tokens/s for both: tokens / wall time from the start signal until the
last token became terminal (the time of that last change, taken from the audit log).

What a run must show, or the script exits 1:

- every token is revealed, or failed with reason max_attempts — each such failure is explained
  (stage, attempts, who claimed it and what became of those workers);
- the audit log shows no transition applied twice, no transition by a worker that did not hold
  the lease, no claim that took over a lease still live at that moment (so at no moment did two
  workers hold live leases on one token), and no update it cannot account for;
- no worker died by itself, and none saw DatabaseUnavailable or an illegal transition.

The audit (created by the soak in its scratch database, not a glisk migration): a table
`soak_audit` fed by a row-level AFTER UPDATE OF status, claimed_by, lease_expires_at, attempts
trigger on tokens_s0. What the trigger sees: `UPDATE OF status` fires whenever the statement's
SET list names status, whatever the value — and the claim statement always sets status (a CASE
that may keep it), so a generation claim that takes over an expired generating token
(generating → generating, no status change) and every upload and reveal claim are logged as
rows whose old and new status are equal. Naming the lease columns too makes the log independent
of that detail. Each row records old and new status, holder, lease and attempts, the acting
worker (workers connect with application_name = their worker id), the transaction id,
statement_timestamp() of the updating statement (the instant the claim's lease arithmetic uses;
column tx_at) and clock_timestamp().
Rows are written inside the updating transaction, so a killed worker's rolled-back work leaves
none, and row locks order the updates of one token, so `seq` order is the order of application.
Replaying each token's rows checks that every row's old values are the previous row's new ones
(nothing escaped the log), that no transaction updated a token twice, that each row is a claim,
a lease holder's transition or a max_attempts failure, and that the status changes are exactly
detected → generating → uploading → ready → revealed (or a prefix of it, then failed).

Workers loop: claim a batch (`--batch`, 10) of the latest stage that has work (reveal, then
upload, then generation, so the pipeline drains), sleep 0-5 ms per token (the simulated work),
then record the whole batch's transitions in one Unit of Work. A Conflict there (a lease ran out
and another worker took the token over — expected under chaos) rolls that Unit of Work back, and
the batch is recorded again one Unit of Work per token, skipping the tokens taken over. Workers
stop when no token is left unfinished (checked when a round of claims comes back empty) or at a
deadline. The chaos loop kills a random worker among those past start-up (`--victims any`
includes workers still starting).

How workers start (`--start`): by default each is forked from a fork server that has imported
glisk, SQLAlchemy and psycopg once (multiprocessing's "forkserver": a fresh process that holds no
engine or connection; each worker builds its own engine after the fork). `--start subprocess`
runs this script afresh per worker instead; on this 2-core machine that costs ~2.5 s of CPU per
start, and a replacement every 2 s then takes more than half of the cores the workers share, so
the chaos figure would mostly measure Python's start-up rather than glisk's recovery.

    uv run python bench/soak.py                  # 20,000 tokens, no chaos then chaos
    uv run python bench/soak.py --quick          # smoke run: 2,000 tokens
    uv run python bench/soak.py --order chaos-first --tokens 5000 --max-attempts 3
    uv run python bench/soak.py --start subprocess   # a fresh interpreter per worker
    uv run python bench/soak.py --database-url postgresql+psycopg://user:pw@host/db

With --database-url the soak creates a scratch database on that server and drops it at the end;
without, it starts its own embedded server (no fsync) in a temporary directory and removes it.
Either way, also on Ctrl-C or failure, every worker process is killed first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg.rows import dict_row
from scratch import conninfo, migrate_with_author, scratch_database
from sqlalchemy.engine import make_url

from glisk_cli.db import setup_db_session
from glisk_cli.errors import Conflict, DatabaseUnavailable
from glisk_cli.logging import configure_logging
from glisk_cli.models import TERMINAL_STATUSES, InvalidStateTransition, TokenStatus
from glisk_cli.uow import UnitOfWork, create_uow_factory

URL_VARIABLE = "GLISK_SOAK_DATABASE_URL"  # the worker's URL: in its environment, not its argv
STAGES = ("reveal", "upload", "generation")  # a worker's preference: later stages first
IDLE_S = 0.05  # a worker's pause after a round of empty claims
STATS_EVERY_S = 1.0
POLL_S = 0.1  # the parent's loop
PROGRESS_EVERY_S = 15.0
# What the fork server imports once for every worker it forks (`--start forkserver`): all
# this script imports, and the driver dialect the engine loads on first use.
PRELOAD = [
    "glisk_cli.db",
    "glisk_cli.embedded",
    "glisk_cli.logging",
    "glisk_cli.migrations",
    "glisk_cli.uow",
    "psycopg.rows",
    "sqlalchemy.dialects.postgresql.psycopg",
]

# The audit: what the replay expects of each kind of row.
CLAIM_STAGE = {
    "detected": "generation",
    "generating": "generation",
    "uploading": "upload",
    "ready": "reveal",
}
CLAIMED_STATUS = {"generation": "generating", "upload": "uploading", "reveal": "ready"}
NEXT_STATUS = {"generating": "uploading", "uploading": "ready", "ready": "revealed"}
PIPELINE = ["generating", "uploading", "ready", "revealed"]
AUDIT_COUNTS = ("audit rows", "claims", "transitions", "takeovers", "late transitions", "failures")

AUDIT_DDL = """
CREATE TABLE soak_audit (
    seq bigserial PRIMARY KEY,
    token_id int NOT NULL,
    actor text NOT NULL,
    old_status token_status NOT NULL,
    new_status token_status NOT NULL,
    old_claimed_by text,
    new_claimed_by text,
    old_lease timestamptz,
    new_lease timestamptz,
    old_attempts int NOT NULL,
    new_attempts int NOT NULL,
    error_data jsonb,
    txid bigint NOT NULL,
    tx_at timestamptz NOT NULL,
    at timestamptz NOT NULL
);
CREATE FUNCTION soak_audit_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO soak_audit (token_id, actor, old_status, new_status, old_claimed_by,
                            new_claimed_by, old_lease, new_lease, old_attempts, new_attempts,
                            error_data, txid, tx_at, at)
    VALUES (NEW.token_id, current_setting('application_name'), OLD.status, NEW.status,
            OLD.claimed_by, NEW.claimed_by, OLD.lease_expires_at, NEW.lease_expires_at,
            OLD.attempts, NEW.attempts, NEW.error_data, txid_current(), statement_timestamp(),
            clock_timestamp());
    RETURN NULL;
END
$$;
CREATE TRIGGER soak_audit AFTER UPDATE OF status, claimed_by, lease_expires_at, attempts
    ON tokens_s0 FOR EACH ROW EXECUTE FUNCTION soak_audit_log();
"""
AUDIT_DROP = """
DROP TRIGGER IF EXISTS soak_audit ON tokens_s0;
DROP FUNCTION IF EXISTS soak_audit_log();
DROP TABLE IF EXISTS soak_audit;
"""


class SoakFailure(Exception):
    """A run that cannot start or be measured (workers dying at start-up): exit 1."""


# -- the worker (a separate process: this script with --worker) ---------------------------------


def transition(uow: UnitOfWork, stage: str, token_id: int, worker: str) -> None:
    """Record the stage's result: the token moves on to the next status, under our lease."""
    tokens = uow.tokens
    if stage == "generation":
        path = f"/var/lib/glisk/images/{token_id}.png"
        tokens.transition(token_id, TokenStatus.UPLOADING, worker=worker, image_path=path)
    elif stage == "upload":
        cid = f"bafkreisoak{token_id:049d}"
        tokens.transition(token_id, TokenStatus.READY, worker=worker, metadata_cid=cid)
    else:
        tx_hash = f"0x{token_id:064x}"
        tokens.transition(token_id, TokenStatus.REVEALED, worker=worker, tx_hash=tx_hash)


def write_stats(path: Path, stats: Counter[str], **flags: bool) -> None:
    """Replace the worker's stats file atomically: a SIGKILL leaves the previous one whole."""
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps({**stats, **flags}))
    staging.replace(path)


def record(
    uow_factory: Callable[[], UnitOfWork],
    stage: str,
    token_ids: list[int],
    worker: str,
    stats: Counter[str],
) -> None:
    """Move a batch on in one Unit of Work; if that meets a Conflict, token by token instead.

    A Conflict (our lease ran out and another worker took a token over) rolls the whole batch's
    Unit of Work back; the retry, one Unit of Work per token, then skips just the taken tokens.
    """
    try:
        with uow_factory() as uow:
            for token_id in token_ids:
                transition(uow, stage, token_id, worker)
        stats["transitions"] += len(token_ids)
        return
    except Conflict:  # (or InvalidStateTransition, a Conflict too): sorted out below
        stats["batch conflicts"] += 1
    except DatabaseUnavailable:
        stats["unavailable"] += 1
    for token_id in token_ids:
        try:
            with uow_factory() as uow:
                transition(uow, stage, token_id, worker)
            stats["transitions"] += 1
        except InvalidStateTransition:  # we hold the lease, yet the move is illegal: a bug
            stats["illegal"] += 1
        except Conflict:  # our lease ran out and another worker took the token over
            stats["conflicts"] += 1
        except DatabaseUnavailable:
            stats["unavailable"] += 1


def run_worker(args: argparse.Namespace) -> int:
    """One worker: its own engine and Unit of Work factory; loops until nothing is unfinished."""
    configure_logging("WARNING")
    parent = os.getppid()
    worker: str = args.worker
    url = make_url(os.environ[URL_VARIABLE]).update_query_dict({"application_name": worker})
    uow_factory = create_uow_factory(
        setup_db_session(url.render_as_string(hide_password=False), pool_size=2)
    )
    lease = timedelta(seconds=args.lease)
    stats_file, go_file = Path(args.stats_file), Path(args.go_file)
    stats: Counter[str] = Counter()
    with uow_factory() as uow:  # connect before the start signal
        uow.tokens.stats()
    write_stats(stats_file, stats, ready=True)
    while not go_file.exists():
        if os.getppid() != parent or time.time() > args.deadline:
            return 3
        time.sleep(0.01)
    rng = random.Random(worker)
    checkpoint = time.monotonic()
    while True:
        if os.getppid() != parent or time.time() > args.deadline:
            write_stats(stats_file, stats, ready=True, gave_up=True)
            return 3
        if time.monotonic() - checkpoint > STATS_EVERY_S:
            write_stats(stats_file, stats, ready=True)
            checkpoint = time.monotonic()
        stage, tokens = "", []
        try:
            for stage in STAGES:
                with uow_factory() as uow:
                    tokens = uow.tokens.claim(stage, args.batch, worker, lease, args.max_attempts)
                stats["claims"] += 1
                if tokens:
                    break
            if not tokens:
                with uow_factory() as uow:
                    counts = uow.tokens.stats().statuses
                if all(counts[s].count == 0 for s in TokenStatus if s not in TERMINAL_STATUSES):
                    break
                stats["idle"] += 1
                time.sleep(IDLE_S)
                continue
        except DatabaseUnavailable:
            stats["unavailable"] += 1
            time.sleep(IDLE_S)
            continue
        stats["claimed"] += len(tokens)
        for _ in tokens:
            time.sleep(rng.uniform(0, args.max_work_ms) / 1000)  # the work itself
        record(uow_factory, stage, [token.token_id for token in tokens], worker, stats)
    write_stats(stats_file, stats, ready=True, done=True)
    return 0


# -- the parent: database, audit, workers, chaos ----------------------------------------------


def prepare(url: str) -> None:
    """Migrate with glisk's own migrations, then add one author and the soak's audit."""
    migrate_with_author(url, "soak")
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute(AUDIT_DDL)


def seed(conn: psycopg.Connection[Any], tokens: int) -> None:
    """An empty queue and an empty audit, then `tokens` detected tokens minted a second apart."""
    conn.execute("TRUNCATE tokens_s0 CASCADE")
    conn.execute("TRUNCATE soak_audit RESTART IDENTITY")
    conn.execute(
        """
        INSERT INTO tokens_s0 (token_id, author_id, minter_address, status, mint_timestamp)
        SELECT n, (SELECT id FROM authors LIMIT 1), '0x00000000000000000000000000000000000000bb',
               'detected', timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second'
        FROM generate_series(1, %s) AS n
        """,
        [tokens],
    )
    conn.execute("VACUUM ANALYZE tokens_s0")


@dataclass
class Worker:
    """One worker process, started either way (`--start`)."""

    id: str
    stats_file: Path
    log_file: Path
    popen: subprocess.Popen[bytes] | None = None
    process: BaseProcess | None = None

    def returncode(self) -> int | None:
        """None while it runs."""
        if self.popen is not None:
            return self.popen.poll()
        assert self.process is not None
        return self.process.exitcode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.popen is not None:
                self.popen.send_signal(signal.SIGKILL)
                self.popen.wait()
            elif self.process is not None:
                self.process.kill()
                self.process.join()

    def stats(self) -> dict[str, Any]:
        try:
            return json.loads(self.stats_file.read_text())
        except (OSError, ValueError):
            return {}


def forked_worker(argv: list[str], url: str, log_file: str) -> None:
    """A worker forked by the fork server (`--start forkserver`): detach, then run as usual."""
    os.setsid()  # Ctrl-C reaches the parent only; it kills the workers
    log = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ[URL_VARIABLE] = url
    sys.exit(run_worker(build_parser().parse_args(argv)))


@dataclass
class Kill:
    worker: str
    at: datetime  # database clock
    booting: bool  # killed before it was connected and ready
    leases: int  # live leases it held when it died


class Crew:
    """The worker processes of one run: start, kill, replace, reap; all killed on close."""

    def __init__(self, name: str, url: str, args: argparse.Namespace, scratch: Path) -> None:
        self.name, self.url, self.args = name, url, args
        self.dir = scratch / name
        self.dir.mkdir()
        self.go_file = self.dir / "go"
        self.deadline = time.time() + args.timeout + 120  # workers outlive no stuck parent
        self.workers: list[Worker] = []
        self.live: list[Worker] = []
        self.forkserver: ForkServerContext | None = None
        if args.start == "forkserver":
            # Workers forked from a server that has imported this script (and so glisk,
            # SQLAlchemy, psycopg) once: a replacement starts in milliseconds instead of
            # paying the interpreter start-up (~2.5 s of CPU here) on the workers' cores.
            # (Named modules, not "__main__": Python 3.11's fork server ignores that one.)
            self.forkserver = cast(ForkServerContext, mp.get_context("forkserver"))
            self.forkserver.set_forkserver_preload(PRELOAD)

    def start(self) -> Worker:
        worker_id = f"{self.name}-w{len(self.workers) + 1:03d}"
        stats_file, log_file = self.dir / f"{worker_id}.json", self.dir / f"{worker_id}.log"
        argv = [
            "--worker",
            worker_id,
            "--stats-file",
            str(stats_file),
            "--go-file",
            str(self.go_file),
            "--deadline",
            str(self.deadline),
            "--lease",
            str(self.args.lease),
            "--max-attempts",
            str(self.args.max_attempts),
            "--batch",
            str(self.args.batch),
            "--max-work-ms",
            str(self.args.max_work_ms),
        ]
        worker = Worker(worker_id, stats_file, log_file)
        if self.forkserver is None:
            with open(log_file, "wb") as log:
                worker.popen = subprocess.Popen(
                    [sys.executable, str(Path(__file__).absolute()), *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, URL_VARIABLE: self.url},
                    start_new_session=True,  # Ctrl-C reaches the parent only
                )
        else:
            worker.process = self.forkserver.Process(
                target=forked_worker, args=(argv, self.url, str(log_file))
            )
            worker.process.start()
        self.workers.append(worker)
        self.live.append(worker)
        return worker

    def kill(self, worker: Worker) -> None:
        worker.kill()
        self.live.remove(worker)

    def exited(self) -> list[Worker]:
        """Workers that ended by themselves since the last call (no longer live)."""
        gone = [worker for worker in self.live if worker.returncode() is not None]
        for worker in gone:
            self.live.remove(worker)
        return gone

    def close(self) -> None:
        for worker in list(self.live):
            self.kill(worker)


@dataclass
class Verdict:
    violations: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)

    def violate(self, token_id: int, problem: str) -> None:
        self.violations.append(f"token {token_id}: {problem}")


@dataclass
class RunResult:
    name: str
    tokens: int  # finished ones: all of them, unless the run timed out
    seconds: float
    kills: list[Kill]
    crashes: list[str]
    worker_totals: Counter[str]
    workers_started: int
    verdict: Verdict
    load: tuple[float, float]  # 1-minute load average at the start and at the end

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


def replay(
    token_id: int,
    rows: list[dict[str, Any]],
    final: dict[str, Any],
    args: argparse.Namespace,
    kills: dict[str, datetime],
    verdict: Verdict,
) -> None:
    """Check one token's audit rows against the claim and state-machine contract (see above)."""
    lease = timedelta(seconds=args.lease)
    state: tuple[Any, ...] = ("detected", None, None, 0)
    changes: list[str] = []
    stage_claims: list[dict[str, Any]] = []  # claims since the token entered its stage
    transactions: set[int] = set()
    for row in rows:
        if row["txid"] in transactions:
            verdict.violate(token_id, f"updated twice by transaction {row['txid']}")
        transactions.add(row["txid"])
        old = (row["old_status"], row["old_claimed_by"], row["old_lease"], row["old_attempts"])
        if old != state:
            verdict.violate(token_id, f"audit gap before seq {row['seq']}: {old} after {state}")
        old_status, new_status, actor = row["old_status"], row["new_status"], row["actor"]
        free = row["old_lease"] is None or row["old_lease"] < row["tx_at"]
        stage = CLAIM_STAGE.get(old_status)
        if new_status == "failed":
            verdict.counts["failures"] += 1
            reason = (row["error_data"] or {}).get("reason")
            if reason != "max_attempts" or row["old_attempts"] < args.max_attempts or not free:
                verdict.violate(token_id, f"unexplained failure at seq {row['seq']}: {row}")
        elif row["new_claimed_by"] is not None:  # a claim
            verdict.counts["claims"] += 1
            ok = (
                stage is not None
                and new_status == CLAIMED_STATUS[stage]
                and row["new_claimed_by"] == actor
                and row["new_attempts"] == row["old_attempts"] + 1
                and row["new_lease"] == row["tx_at"] + lease
            )
            if not ok:
                verdict.violate(token_id, f"malformed claim at seq {row['seq']}: {row}")
            if not free:  # the previous holder's lease was still live: two live leases at once
                verdict.violate(token_id, f"claim over a live lease at seq {row['seq']}: {row}")
            if row["old_claimed_by"] is not None:
                verdict.counts["takeovers"] += 1
                verdict.counts[f"takeovers in {stage}"] += 1
            stage_claims.append(row)
        elif new_status == NEXT_STATUS.get(old_status):  # a transition
            verdict.counts["transitions"] += 1
            if actor != row["old_claimed_by"]:
                verdict.violate(token_id, f"transition by a non-holder at seq {row['seq']}: {row}")
            if row["new_lease"] is not None:
                verdict.violate(token_id, f"transition kept a lease at seq {row['seq']}: {row}")
            if row["old_lease"] is not None and row["old_lease"] < row["at"]:
                verdict.counts["late transitions"] += 1  # expired, but nobody had taken over
        else:
            verdict.violate(token_id, f"update the contract does not explain: {row}")
        if new_status != old_status:
            changes.append(new_status)
            if new_status == "failed":
                verdict.failures.append(explain_failure(token_id, row, stage_claims, kills, lease))
            if row["new_claimed_by"] is None:  # not detected → generating by a claim
                stage_claims = []
        state = (new_status, row["new_claimed_by"], row["new_lease"], row["new_attempts"])
    table = (final["status"], final["claimed_by"], final["lease_expires_at"], final["attempts"])
    if table != state:
        verdict.violate(token_id, f"table {table} differs from the audit's last state {state}")
    done = changes[:-1] if changes[-1:] == ["failed"] else changes
    if done != PIPELINE[: len(done)] or (changes[-1:] != ["failed"] and done != PIPELINE):
        verdict.violate(token_id, f"status changes {' → '.join(['detected', *changes])}")


@dataclass(frozen=True)
class Failure:
    """A token failed for max_attempts, and what became of each claim of its last stage."""

    token_id: int
    stage: str
    attempts: int
    fates: tuple[str, ...]  # per claim: "killed" (its holder died holding it) or "expired"

    def __str__(self) -> str:
        return (
            f"token {self.token_id}: failed in {self.stage} after {self.attempts} attempts; "
            f"its claims' holders: {', '.join(self.fates)}"
        )


def explain_failure(
    token_id: int,
    row: dict[str, Any],
    claims: list[dict[str, Any]],
    kills: dict[str, datetime],
    lease: timedelta,
) -> Failure:
    """Why each claim of the failed stage came to nothing: its holder was killed while holding
    the lease, or (a live holder) did not finish within the lease."""
    fates = []
    for claim in claims:
        killed = kills.get(claim["actor"])
        held = killed is not None and claim["tx_at"] <= killed <= claim["tx_at"] + lease
        fates.append("killed" if held else "expired")
    error = row["error_data"] or {}
    stage = str(error.get("stage", CLAIM_STAGE.get(row["old_status"])))
    return Failure(token_id, stage, int(error.get("attempts", row["old_attempts"])), tuple(fates))


def audit(conn: psycopg.Connection[Any], args: argparse.Namespace, kills: list[Kill]) -> Verdict:
    """Replay every token's audit rows; also check the final table (revealed or max_attempts)."""
    verdict = Verdict()
    killed = {kill.worker: kill.at for kill in kills}
    with conn.cursor(row_factory=dict_row) as cursor:
        finals = {
            row["token_id"]: row
            for row in cursor.execute(
                "SELECT token_id, status::text, claimed_by, lease_expires_at, attempts, "
                "error_data FROM tokens_s0"
            )
        }
        rows = cursor.execute(
            "SELECT *, old_status::text AS old_status, new_status::text AS new_status "
            "FROM soak_audit ORDER BY token_id, seq"
        ).fetchall()
    by_token: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_token.setdefault(row["token_id"], []).append(row)
    for token_id, final in finals.items():
        verdict.counts[f"final {final['status']}"] += 1
        reason = (final["error_data"] or {}).get("reason")
        if final["status"] != "revealed" and (final["status"], reason) != (
            "failed",
            "max_attempts",
        ):
            verdict.violate(token_id, f"ended {final['status']} (reason {reason})")
        replay(token_id, by_token.pop(token_id, []), final, args, killed, verdict)
    for token_id in by_token:
        verdict.violate(token_id, "audited but not in the table")
    verdict.counts["audit rows"] = len(rows)
    return verdict


def run_soak(
    name: str, chaos: bool, url: str, args: argparse.Namespace, scratch: Path
) -> RunResult:
    """Seed, start the workers, run (with or without chaos) until every token is terminal."""
    rng = random.Random(args.seed)
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        seed(conn, args.tokens)
        crew = Crew(name, url, args, scratch)
        kills: list[Kill] = []
        crashes: list[str] = []
        started, load, unfinished = time.time(), 0.0, args.tokens
        try:
            for _ in range(args.workers):
                crew.start()
            wait_until(lambda: all(w.stats().get("ready") for w in crew.workers), 120, crew)
            started, load = time.time(), os.getloadavg()[0]
            crew.go_file.touch()
            print(f"  {name}: started {args.workers} workers", file=sys.stderr, flush=True)
            next_kill = next_progress = time.monotonic() + args.kill_interval
            while unfinished:
                if time.time() - started > args.timeout:
                    crashes.append(f"timeout: {unfinished} tokens unfinished after {args.timeout}s")
                    break
                if time.monotonic() >= next_progress:
                    next_progress += PROGRESS_EVERY_S
                    ready = sum(1 for w in crew.live if w.stats().get("ready"))
                    rows = conn.execute(
                        "SELECT status::text, count(*), count(*) FILTER "
                        "(WHERE lease_expires_at > now()) FROM tokens_s0 GROUP BY 1 ORDER BY 1"
                    ).fetchall()
                    statuses = " ".join(f"{s}={n}({live} leased)" for s, n, live in rows)
                    print(
                        f"  {name}: {time.time() - started:5.0f}s {ready}/{len(crew.live)} "
                        f"workers ready, {len(kills)} kills; {statuses}",
                        file=sys.stderr,
                        flush=True,
                    )
                for worker in crew.exited():  # ended by itself: finished, or crashed
                    if worker.returncode() == 0 and worker.stats().get("done"):
                        continue  # saw no unfinished token, a moment before this loop did
                    tail = worker.log_file.read_text(errors="replace")[-2000:]
                    crashes.append(f"{worker.id} exited {worker.returncode()}:\n{tail}")
                    crew.start()
                if chaos and time.monotonic() >= next_kill and crew.live:
                    kills.append(kill_one(conn, crew, rng))
                    crew.start()
                    next_kill += args.kill_interval
                time.sleep(POLL_S)
                unfinished = count_unfinished(conn)
            wait_until(lambda: all(w.returncode() is not None for w in crew.live), 30, None)
            for worker in crew.exited():
                if worker.returncode() != 0:
                    crashes.append(f"{worker.id} exited {worker.returncode()}")
        finally:
            crew.close()
        [finished] = conn.execute(
            "SELECT extract(epoch FROM max(at)) FROM soak_audit "
            "WHERE new_status IN ('revealed', 'failed') AND old_status <> new_status"
        ).fetchone() or [None]
        if finished is None:
            raise SoakFailure(f"{name}: the audit recorded no token finishing")
        totals: Counter[str] = Counter()
        for worker in crew.workers:
            totals.update({k: v for k, v in worker.stats().items() if not isinstance(v, bool)})
        verdict = audit(conn, args, kills)
    seconds = float(finished) - started if not unfinished else args.timeout
    load_end = os.getloadavg()[0]
    return RunResult(
        name,
        args.tokens - unfinished,
        seconds,
        kills,
        crashes,
        totals,
        len(crew.workers),
        verdict,
        (load, load_end),
    )


def wait_until(done: Callable[[], bool], timeout: float, crew: Crew | None) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if crew and (dead := [w.id for w in crew.workers if w.returncode() is not None]):
            tails = "\n".join(w.log_file.read_text(errors="replace")[-2000:] for w in crew.workers)
            raise SoakFailure(f"workers {dead} died while starting:\n{tails}")
        if time.monotonic() > deadline:
            if crew is None:
                return
            raise SoakFailure(f"workers not ready after {timeout:.0f}s")
        time.sleep(POLL_S)


def kill_one(conn: psycopg.Connection[Any], crew: Crew, rng: random.Random) -> Kill:
    working = [worker for worker in crew.live if worker.stats().get("ready")]
    victim = rng.choice(working if working and crew.args.victims == "working" else crew.live)
    booting = not victim.stats().get("ready")
    crew.kill(victim)
    row = conn.execute(
        "SELECT clock_timestamp(), count(*) FROM tokens_s0 "
        "WHERE claimed_by = %s AND lease_expires_at > now()",
        [victim.id],
    ).fetchone()
    assert row is not None
    return Kill(victim.id, row[0], booting, row[1])


def count_unfinished(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM tokens_s0 "
        "WHERE status IN ('detected', 'generating', 'uploading', 'ready')"
    ).fetchone()
    return row[0] if row else 0


# -- the report -----------------------------------------------------------------------------------


def show(result: RunResult) -> None:
    verdict, totals = result.verdict, result.worker_totals
    kills = result.kills
    print(
        f"\n## {result.name}: {result.tokens} tokens in {result.seconds:.1f}s = "
        f"{result.rate:.0f} tokens/s (load average {result.load[0]:.1f} → "
        f"{result.load[1]:.1f})"
    )
    print(
        f"workers started {result.workers_started}; kills {len(kills)} "
        f"({sum(k.booting for k in kills)} while booting, "
        f"{sum(1 for k in kills if k.leases)} holding live leases, "
        f"{sum(k.leases for k in kills)} leases orphaned); "
        f"crashes {len(result.crashes)}"
    )
    print(
        "workers (killed ones up to their last 1 s checkpoint): "
        + ", ".join(
            f"{key} {totals[key]}"
            for key in (
                "claims",
                "claimed",
                "transitions",
                "batch conflicts",
                "conflicts",
                "idle",
                "unavailable",
                "illegal",
            )
        )
    )
    counts = verdict.counts
    keys = [*AUDIT_COUNTS, *sorted(set(counts) - set(AUDIT_COUNTS))]
    print("audit: " + ", ".join(f"{key} {counts[key]}" for key in keys))
    causes = Counter(
        (
            f.stage,
            f.attempts,
            "every holder killed"
            if set(f.fates) == {"killed"}
            else f"lease expired under a live holder {f.fates.count('expired')}x",
        )
        for f in verdict.failures
    )
    for (stage, attempts, cause), count in sorted(causes.items()):
        print(f"failed: {count} tokens in {stage} after {attempts} attempts, {cause}")
    for failure in verdict.failures[:10]:
        print(f"  {failure}")
    if len(verdict.failures) > 10:
        print(f"  ... and {len(verdict.failures) - 10} more failed tokens")
    for crash in result.crashes:
        print(f"  CRASH {crash}")
    shown = verdict.violations[:20]
    for violation in shown:
        print(f"  VIOLATION {violation}")
    if len(verdict.violations) > len(shown):
        print(f"  ... and {len(verdict.violations) - len(shown)} more violations")
    print(f"audit verdict: {'PASS' if passed(result) else 'FAIL'}")


def passed(result: RunResult) -> bool:
    totals = result.worker_totals
    return not (
        result.verdict.violations or result.crashes or totals["unavailable"] or totals["illegal"]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="use this server (a scratch database on it)")
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 tokens")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--lease", type=float, default=2.0, help="lease in seconds")
    parser.add_argument("--max-attempts", type=int, default=5)
    parser.add_argument("--batch", type=int, default=10, help="claim limit")
    parser.add_argument("--max-work-ms", type=float, default=5.0, help="work per token: 0..N ms")
    parser.add_argument("--kill-interval", type=float, default=2.0, help="seconds between kills")
    parser.add_argument("--order", choices=["calm-first", "chaos-first"], default="calm-first")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per run")
    parser.add_argument("--seed", type=int, default=1, help="of the chaos loop's victim choice")
    parser.add_argument(
        "--start",
        choices=["subprocess", "forkserver"],
        default="forkserver",
        help="how workers start: a fresh interpreter each, or forked from a preloaded server",
    )
    parser.add_argument(
        "--victims",
        choices=["working", "any"],
        default="working",
        help="kill only workers past start-up (connected, claiming), or any live one",
    )
    # The worker side: this script started by the parent.
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--stats-file", help=argparse.SUPPRESS)
    parser.add_argument("--go-file", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    return parser


def main() -> int:
    args = build_parser().parse_args()
    if args.worker:
        return run_worker(args)
    if args.quick:
        args.tokens = 2_000
    configure_logging("WARNING")

    def interrupted(_signum: int, _frame: Any) -> None:
        for number in (signal.SIGINT, signal.SIGTERM):  # let the clean-up finish undisturbed
            signal.signal(number, signal.SIG_IGN)
        raise KeyboardInterrupt

    # Installed explicitly: a shell starting us in the background would have us ignore SIGINT.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, interrupted)
    plan = [("calm", False), ("chaos", True)]
    if args.order == "chaos-first":
        plan.reverse()
    scratch = Path(tempfile.mkdtemp(prefix="glisk-soak-workers-"))
    results: list[RunResult] = []
    try:
        with scratch_database(args.database_url, prefix="glisk_soak") as url:
            prepare(url)
            with psycopg.connect(conninfo(url), autocommit=True) as conn:
                version = conn.execute("SHOW server_version").fetchone()
            print(
                f"# {platform.node()} · {os.cpu_count()} cores · Python "
                f"{platform.python_version()} · PostgreSQL {version[0] if version else '?'}"
                f" · {'root' if os.geteuid() == 0 else 'not root'}"
            )
            print(
                f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {args.tokens} tokens"
                f" · {args.workers} workers · lease {args.lease:g}s · max_attempts "
                f"{args.max_attempts} · batch {args.batch} · work 0-{args.max_work_ms:g} ms"
                f" · kill every {args.kill_interval:g}s",
                flush=True,
            )
            for name, chaos in plan:
                result = run_soak(name, chaos, url, args, scratch)
                results.append(result)
                show(result)
            with psycopg.connect(conninfo(url), autocommit=True) as conn:
                conn.execute(AUDIT_DROP)
    except SoakFailure as failure:
        print(f"soak failed: {failure}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; workers and server cleaned up", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rates = {result.name: result.rate for result in results}
    print(
        f"\ntokens/s: calm {rates['calm']:.0f}, chaos {rates['chaos']:.0f}, "
        f"chaos/calm {rates['chaos'] / rates['calm']:.2f}"
    )
    ok = all(passed(result) for result in results)
    print(f"overall: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
