"""`glisk serve --dashboard` in a real browser: the pipeline page shows the seeded counts, a
token's page its attempts, search finds a token, the page follows a token that moves without a
reload, a `<script>` in a prompt or an error is text, and a wrong password gets 401."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import text

from tests.top_pipeline import seed_busy_pipeline

pytestmark = pytest.mark.browser

REFRESHED = 10_000  # ms: a refresh every 3 s, on a reading at most a second old
SCRIPT = '<script>window.pwned = 1</script><img src="x" onerror="window.pwned = 2">'


def url(server, path: str = "/") -> str:
    return f"http://127.0.0.1:{server.base_port}{path}"


def test_the_pipeline_page_shows_the_seeded_counts(
    browser: Browser, serve_dashboard, session_factory
) -> None:
    seed_busy_pipeline(session_factory)
    server = serve_dashboard()
    page = browser.new_page()
    page.goto(url(server))
    generation = page.locator('tr[data-stage="generation"]')
    # The count first, then what waits out a retry delay ("33 1 retrying"): the count exactly.
    expect(generation.locator('[data-field="waiting"]')).to_have_text(re.compile(r"^\s*33\b"))
    expect(generation.locator('[data-field="in_flight"]')).to_have_text("4")
    expect(generation.locator('[data-field="done_last_hour"]')).to_have_text("60")
    upload = page.locator('tr[data-stage="upload"]')
    expect(upload.locator('[data-field="waiting"]')).to_have_text(re.compile(r"^\s*8\b"))
    expect(page.locator("table.workers")).to_contain_text("w-gen")
    expect(page.locator("ul.reasons")).to_contain_text("max_attempts")
    assert "hunter2" not in page.content()  # an error naming a password, masked


def test_a_tokens_page_shows_its_attempts_and_why_it_waits(
    browser: Browser, serve_dashboard, session_factory
) -> None:
    seed_busy_pipeline(session_factory)
    server = serve_dashboard()
    page = browser.new_page()
    page.goto(url(server, "/tokens/51"))
    expect(page.locator("h1")).to_contain_text("token 51")
    rows = page.locator("table.attempts tbody tr")
    expect(rows).to_have_count(12 + 2 + 1)  # twelve generations, two uploads, one reveal
    reveal = rows.filter(has_text="reveal")
    expect(reveal).to_contain_text("confirmed")
    expect(reveal).to_contain_text("tx 0x" + "0" * 64)
    page.goto(url(server, "/tokens/2"))
    expect(page.locator("table.attempts")).to_contain_text("failed")
    expect(page.locator("p.why")).to_contain_text("token 2 is next in line for generation")


def test_search_finds_a_token(browser: Browser, serve_dashboard, session_factory) -> None:
    seed_busy_pipeline(session_factory)
    server = serve_dashboard()
    page = browser.new_page()
    page.goto(url(server))
    page.get_by_label("token id").fill("97")
    page.get_by_label("token id").press("Enter")
    page.wait_for_url(url(server, "/tokens/97"))
    expect(page.locator("h1")).to_contain_text("token 97")
    expect(page.locator('[data-field="status"]')).to_have_text("failed")
    page.get_by_label("token id").fill("4242")
    page.get_by_label("token id").press("Enter")
    expect(page.locator("h1")).to_have_text("No such token")


def test_the_page_follows_a_token_that_moves_without_a_reload(
    browser: Browser, serve_dashboard, session_factory, uow_factory
) -> None:
    seed_busy_pipeline(session_factory)
    server = serve_dashboard()
    page = browser.new_page()
    page.goto(url(server, "/tokens/1"))
    expect(page.locator('[data-field="status"]')).to_have_text("detected")
    page.evaluate("window.loadedOnce = true")
    with uow_factory() as uow:  # token 1 is the oldest mint: the next claim takes it
        [claimed] = uow.tokens.claim(
            stage="generation", limit=1, worker="w-new", lease=timedelta(minutes=5)
        )
    assert claimed.token_id == 1
    expect(page.locator('[data-field="status"]')).to_have_text("generating", timeout=REFRESHED)
    expect(page.locator("p.why")).to_contain_text("held by worker w-new", timeout=REFRESHED)
    assert page.evaluate("window.loadedOnce") is True  # the same document: not reloaded


def test_a_script_in_a_prompt_or_an_error_is_shown_as_text_and_never_runs(
    browser: Browser, serve_dashboard, session_factory
) -> None:
    seed_busy_pipeline(session_factory)
    with session_factory() as session, session.begin():
        for statement in (
            "UPDATE authors SET prompt_text = :script",
            "UPDATE tokens_s0 SET error_data = jsonb_build_object('reason', 'boom', 'stage',"
            " 'generation', 'message', CAST(:script AS text)) WHERE token_id = 95",
            "UPDATE image_generation_jobs SET error_data = jsonb_build_object('message',"
            " CAST(:script AS text)) WHERE status = 'failed'",
        ):
            session.execute(text(statement), {"script": SCRIPT})
    server = serve_dashboard()
    page = browser.new_page()
    for path in ("/", "/tokens/1", "/tokens/95"):
        page.goto(url(server, path))
        expect(page.locator("main")).to_contain_text(SCRIPT)
        assert page.evaluate("window.pwned") is None, path
        assert page.locator("main script, main img").count() == 0
    expect(page.locator("blockquote.prompt")).to_have_text(SCRIPT)
    # and once the page has replaced its content with a refreshed copy
    with page.expect_response(lambda reply: "part=main" in reply.url, timeout=REFRESHED):
        pass
    expect(page.locator("blockquote.prompt")).to_have_text(SCRIPT)
    assert page.evaluate("window.pwned") is None
    assert page.locator("main script, main img").count() == 0


def test_a_wrong_password_gets_401_and_the_health_paths_ask_for_none(
    browser: Browser, serve_dashboard
) -> None:
    server = serve_dashboard(GLISK_DASHBOARD_PASSWORD="correct horse")
    wrong = browser.new_context(http_credentials={"username": "ops", "password": "battery"})
    assert wrong.new_page().goto(url(server)).status == 401  # type: ignore[union-attr]
    right = browser.new_context(http_credentials={"username": "ops", "password": "correct horse"})
    page = right.new_page()
    assert page.goto(url(server)).status == 200  # type: ignore[union-attr]
    expect(page.locator('tr[data-stage="generation"]')).to_be_visible()
    # the page's own refreshes carry the credentials too
    with page.expect_response(lambda reply: "part=main" in reply.url, timeout=REFRESHED) as reply:
        pass
    assert reply.value.status == 200
    assert server.request("GET", "/health").status == 200
    assert server.request("GET", "/").status == 401
    assert "correct horse" not in server.logs()
