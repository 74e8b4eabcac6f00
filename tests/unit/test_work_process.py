"""One command run (`glisk_cli/work/process.py`), driven as the runner's command slots drive it:
a `poll` of its pipes, `on_event` for each ready one, `check` after every round."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time

from glisk_cli.work.process import STDERR_TAIL, CommandExit, CommandRun


def run_to_end(argv: list[str], stdin: bytes = b"", timeout: float | None = None) -> CommandExit:
    poller = select.poll()
    program = shutil.which(argv[0])
    assert program is not None
    run = CommandRun(program, argv, stdin, dict(os.environ), timeout, poller)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        wait_ms = max(0, int((run.next_check() - time.monotonic()) * 1000) + 1)
        for fd, _ in poller.poll(min(wait_ms, 500)):
            if fd in run.fds:
                run.on_event(fd)
        finished = run.check(time.monotonic())
        if finished is not None:
            return finished
    raise AssertionError("the run never ended")


def test_a_run_reads_all_of_a_large_input_and_keeps_its_answer_and_stderr_apart() -> None:
    document = b"x" * 300_000  # over a pipe's buffer: fed as the command reads
    script = (
        "import sys; data = sys.stdin.buffer.read(); print(len(data)); "
        "print('oops', file=sys.stderr)"
    )

    finished = run_to_end([sys.executable, "-c", script], document)

    assert finished.exit_status == 0
    assert finished.answer == b"300000\n"
    assert finished.stderr_tail == "oops\n"
    assert finished.killed is None


def test_only_the_end_of_a_long_stderr_is_kept() -> None:
    script = "import sys; sys.stderr.write('a' * 10000 + 'THE END')"

    finished = run_to_end([sys.executable, "-c", script])

    assert len(finished.stderr_tail) == STDERR_TAIL
    assert finished.stderr_tail.endswith("THE END")


def test_a_signal_death_is_a_negative_exit_status() -> None:
    finished = run_to_end(["sh", "-c", "kill -TERM $$"])

    assert finished.exit_status == -signal.SIGTERM


def test_what_the_command_leaves_running_is_killed_with_its_group() -> None:
    # The leader exits at once; its child keeps the pipes open and would sleep for a minute.
    started = time.monotonic()
    finished = run_to_end(["sh", "-c", "sleep 60 & echo '{}'"])

    assert finished.exit_status == 0
    assert finished.answer == b"{}\n"
    assert time.monotonic() - started < 10


def test_a_timeout_kills_the_run() -> None:
    finished = run_to_end(["sleep", "60"], timeout=0.3)

    assert finished.killed == "timeout"
    assert finished.exit_status == -signal.SIGKILL


def test_a_run_ends_even_where_children_are_reaped_by_the_system() -> None:
    # A program that ignores SIGCHLD has its children reaped by the kernel: the run cannot
    # wait for its command, and must still end (with status 0, as subprocess reports it).
    program = textwrap.dedent(
        f"""
        import signal, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        from test_work_process import run_to_end
        finished = run_to_end(["sh", "-c", "echo done"])
        print(finished.exit_status, finished.answer.decode().strip())
        """
    )

    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )

    assert result.stdout.split() == ["0", "done"]
