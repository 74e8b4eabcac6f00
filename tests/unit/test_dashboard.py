"""The web view's answers on plain fake readings (no database, no browser): its routes, its
password, its escaping, and the health paths beside it left as they were."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from glisk_cli.cli.serve import is_loopback
from glisk_cli.serve.app import HealthApp
from glisk_cli.serve.check import SharedCheck
from glisk_cli.serve.dashboard import Dashboard
from glisk_cli.serve.http import Request, Response
from glisk_cli.serve.metrics import Metrics

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SCRIPT = "<script>alert(1)</script>"


def stage(**figures: Any) -> dict[str, Any]:
    return {
        "waiting": 0,
        "waiting_exact": True,
        "expired": 0,
        "retrying": 0,
        "in_flight": 0,
        "done_last_minute": 0,
        "done_last_hour": 0,
        "rate_per_minute": None,
        "oldest_waiting_age_seconds": None,
        "eta_seconds": None,
        "controls": None,
    } | figures


def pipeline() -> dict[str, Any]:
    return {
        "at": AT,
        "database": {"revision": "0009", "reachable": True, "error": None, "down_since": None},
        "stages": {
            "generation": stage(waiting=1234, in_flight=3, done_last_hour=60),
            "upload": stage(),
            "reveal": stage(),
        },
        "workers": [
            {
                "name": f"w{SCRIPT}",
                "stages": ["generation"],
                "live": 3,
                "expired": 0,
                "soonest_expiry": AT,
                "seconds_since_renewal": 5.0,
                "stalled": False,
            }
        ],
        "failures": {
            "last_hour_by_reason": {"timeout": 2},
            "recent": [{"at": AT, "stage": "generation", "token_id": 7, "message": SCRIPT}],
        },
    }


def token_page(token_id: int) -> dict[str, Any] | None:
    if token_id != 7:
        return None
    started = AT - timedelta(minutes=2)
    return {
        "token": {"token_id": 7, "status": "failed", "error_data": {"message": SCRIPT}},
        "author": {
            "wallet_address": "0xaa",
            "twitter_handle": None,
            "farcaster_handle": None,
            "prompt_text": SCRIPT,
        },
        "attempts": [
            {
                "stage": "generation",
                "started": started,
                "finished": started + timedelta(seconds=65),
                "outcome": "failed",
                "error": {"message": SCRIPT},
                "tx_hash": None,
                "message": SCRIPT,
            }
        ],
        "why": {"reason": "failed", "message": f"token 7 failed: {SCRIPT}"},
    }


def get(
    dashboard: Dashboard, target: str, *, password: str | None = None, method: bytes = b"GET"
) -> Response:
    path, _, query = target.encode().partition(b"?")
    authorization = None
    if password is not None:
        authorization = b"Basic " + base64.b64encode(f"anyone:{password}".encode())
    request = Request(method, path, True, False, None, query, authorization)

    async def answer() -> Response:
        return dashboard.answer_now(request) or await dashboard.answer(request)

    return asyncio.run(answer())


def dashboard(password: str | None = None) -> Dashboard:
    return Dashboard(pipeline, token_page, password=password)


def test_the_pipeline_page_shows_each_stage_and_escapes_every_value() -> None:
    response = get(dashboard(), "/")
    assert response.code == 200
    assert b"text/html" in response.head
    assert b"1,234" in response.body
    assert SCRIPT.encode() not in response.body
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in response.body
    assert b"Content-Security-Policy: default-src 'none'" in response.head


def test_a_token_page_shows_its_attempts_and_its_prompt_as_text() -> None:
    response = get(dashboard(), "/tokens/7")
    assert response.code == 200
    assert b"1m 05s" in response.body  # how long the attempt took
    assert SCRIPT.encode() not in response.body
    assert response.body.count(b"&lt;script&gt;") >= 4  # prompt, error, why, error_data


def test_a_fragment_is_the_page_without_its_layout() -> None:
    whole, part = get(dashboard(), "/tokens/7"), get(dashboard(), "/tokens/7?part=main")
    assert whole.body.startswith(b"<!doctype html>")
    assert b"<html" not in part.body
    assert b"token 7" in part.body


def test_search_redirects_to_the_token_and_refuses_what_is_not_an_id() -> None:
    found = get(dashboard(), "/tokens?id=+7+")
    assert (found.code, b"Location: /tokens/7\r\n" in found.head) == (303, True)
    for wanted in ("seven", "-1", "99999999999", "%3Cscript%3E"):
        refused = get(dashboard(), f"/tokens?id={wanted}")
        assert refused.code == 400, wanted
        assert b"<script>" not in refused.body


@pytest.mark.parametrize(
    ("target", "code"),
    [("/tokens/8", 404), ("/tokens/abc", 404), ("/tokens/4294967296", 404), ("/nowhere", 404)],
)
def test_what_is_not_there_is_404(target: str, code: int) -> None:
    assert get(dashboard(), target).code == code


def test_the_view_is_read_only() -> None:
    response = get(dashboard(), "/", method=b"POST")
    assert response.code == 405
    assert b"Allow: GET, HEAD" in response.head


def test_with_a_password_a_wrong_or_missing_one_gets_401_and_the_right_one_the_page() -> None:
    guarded = dashboard(password="s3cret")
    for password in (None, "wrong", "s3cret-and-more", ""):
        response = get(guarded, "/", password=password)
        assert response.code == 401, password
        assert b'WWW-Authenticate: Basic realm="glisk dashboard"' in response.head
        assert b"s3cret" not in response.body
    assert get(guarded, "/static/style.css").code == 401
    assert get(guarded, "/", password="s3cret").code == 200


def test_the_health_paths_never_ask_for_the_dashboards_password() -> None:
    def never(_outcome: object) -> None:
        return None

    app = HealthApp(
        SharedCheck("db", lambda: None, never),
        SharedCheck("tokens", lambda: None, never),
        Metrics(),
        dashboard=dashboard(password="s3cret"),
    )

    async def answer(path: bytes) -> Response:
        request = Request(b"GET", path, True, False, None)
        return app.answer_now(request) or await app.answer(request)

    async def both() -> tuple[Response, Response]:
        return await answer(b"/health"), await answer(b"/")

    health, page = asyncio.run(both())
    assert (health.code, health.body) == (200, b'{"status":"healthy"}')
    assert page.code == 401


def test_only_loopback_addresses_count_as_loopback() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.com", ""):
        assert not is_loopback(host), host


def test_a_reading_that_fails_is_a_503_page_saying_why_as_text() -> None:
    def failing() -> dict[str, Any]:
        raise RuntimeError(f"schema drift near {SCRIPT}")

    def failing_token(_token_id: int) -> dict[str, Any] | None:
        raise RuntimeError("no tokens table")

    broken = Dashboard(failing, failing_token, password=None)
    page = get(broken, "/")
    assert page.code == 503
    assert (
        b"Could not read the pipeline: RuntimeError: schema drift near &lt;script&gt;" in page.body
    )
    token = get(broken, "/tokens/7?part=main")
    assert token.code == 503
    assert b"Could not read token 7: RuntimeError: no tokens table" in token.body
