"""The shared database check, without a server: one probe for any number of waiters, a bound on
how long they wait, never a second probe while one is stuck; and the request-head parser."""

from __future__ import annotations

import asyncio
import threading

import pytest

from glisk_cli.errors import DatabaseUnavailable
from glisk_cli.serve.check import Outcome, SharedCheck
from glisk_cli.serve.http import parse_head


class Probe:
    """A probe that counts its calls and, when asked, blocks until released."""

    def __init__(self, *, block: bool = False, error: Exception | None = None) -> None:
        self.calls = 0
        self.release = threading.Event()
        if not block:
            self.release.set()
        self.error = error

    def __call__(self) -> str:
        self.calls += 1
        self.release.wait(10)
        if self.error:
            raise self.error
        return "answer"


def make_check(probe: Probe, outcomes: list[Outcome[str]], **timing: float) -> SharedCheck[str]:
    return SharedCheck("test", probe, outcomes.append, **timing)


def test_concurrent_waiters_share_one_probe_and_then_its_cached_outcome() -> None:
    probe, outcomes = Probe(), []

    async def scenario() -> None:
        check = make_check(probe, outcomes)
        results = await asyncio.gather(*(check.get() for _ in range(50)))
        assert {result.value for result in results} == {"answer"}
        assert (await check.get()).ok

    asyncio.run(scenario())
    assert probe.calls == 1
    assert len(outcomes) == 1


def test_a_probe_that_does_not_answer_in_time_fails_and_is_not_started_twice() -> None:
    probe, outcomes = Probe(block=True), []

    async def scenario() -> None:
        check = make_check(probe, outcomes, timeout=0.05, max_age=0.0, refresh_after=0.0)
        first = await check.get()
        assert not first.ok
        assert first.error == "no answer within 0.05 s"
        second = await check.get()  # the first probe is still stuck: answer at once, no new one
        assert not second.ok
        assert second.seconds is None
        assert probe.calls == 1
        probe.release.set()
        while probe.calls == 1 and not (await check.get()).ok:
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert probe.calls == 2


def test_a_failing_probe_is_reported_with_its_message_only_in_the_outcome() -> None:
    error = DatabaseUnavailable("cannot reach PostgreSQL at postgresql://u:***@db/x: refused")
    probe, outcomes = Probe(error=error), []

    async def scenario() -> Outcome[str]:
        return await make_check(probe, outcomes).get()

    outcome = asyncio.run(scenario())
    assert not outcome.ok
    assert outcome.error == error.message


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"GET /health HTTP/1.1\r\nHost: x", (b"GET", b"/health", True, False, None)),
        (b"HEAD /livez?x=1 HTTP/1.0", (b"HEAD", b"/livez", False, True, None, b"x=1")),
        (b"GET /health HTTP/1.0\r\nConnection: Keep-Alive", (b"GET", b"/health", True, True, None)),
        (b"GET /health HTTP/1.1\r\nConnection: close", (b"GET", b"/health", False, False, None)),
        (b"GET http://h:1/metrics HTTP/1.1", (b"GET", b"/metrics", True, False, None)),
        (b"POST /health HTTP/1.1\r\nContent-Length: 3", (b"POST", b"/health", False, False, None)),
        (
            b"GET / HTTP/1.1\r\nOrigin: http://a.example",
            (b"GET", b"/", True, False, b"http://a.example"),
        ),
        (
            b"GET /tokens?id=7 HTTP/1.1\r\nAuthorization:  Basic b3BzOnB3 ",
            (b"GET", b"/tokens", True, False, None, b"id=7", b"Basic b3BzOnB3"),
        ),
    ],
)
def test_request_heads_are_read(head: bytes, expected: tuple[object, ...]) -> None:
    # the query and the Authorization header (the web view's), when left out, are none
    unsaid = (b"", None)[len(expected) - 5 :]
    assert tuple(parse_head(head) or ()) == (*expected, *unsaid)


@pytest.mark.parametrize(
    "head",
    [
        b"GET /health",
        b"GET /health HTTP/2.0",
        b"GET  /health HTTP/1.1",
        b"GET /health HTTP/1.1\r\nNo colon here",
        b"GET /health HTTP/1.1\r\nHost : x",
        b"GET /health HTTP/1.1\r\nContent-Length: -1",
    ],
)
def test_malformed_heads_are_refused(head: bytes) -> None:
    assert parse_head(head) is None
