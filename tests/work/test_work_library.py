"""The runner as a library: a Python function instead of a command, the same loop."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import SETTING_VARIABLES, seed_tokens


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, migrated_url: str, tmp_path) -> None:
    for name in SETTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    monkeypatch.setenv("GLISK_RETRY_BASE", "10ms")
    monkeypatch.chdir(tmp_path)


def test_a_handler_function_finishes_a_stage_and_a_raising_one_is_retried(
    settings_env: None, session_factory, uow_factory
) -> None:
    from glisk_cli.work import work

    seed_tokens(session_factory, 5)
    calls: list[tuple[int, int]] = []

    def generate(token: Any) -> dict[str, str]:
        calls.append((token.token_id, token.attempts))
        if token.token_id == 3 and token.attempts == 1:
            raise RuntimeError("flaky GPU")
        return {"image_path": f"images/{token.token_id}.png"}

    summary = work("generation", generate, concurrency=2, drain=True)

    assert summary["succeeded"] == 5
    assert summary["retried"] == 1
    assert sorted(calls) == [(1, 1), (2, 1), (3, 1), (3, 2), (4, 1), (5, 1)]
    with uow_factory() as uow:
        token = uow.tokens.get_by_token_id(3)
        assert token is not None
        assert token.image_path == "images/3.png"
        assert token.error_data is not None
        assert token.error_data["message"] == "RuntimeError: flaky GPU"


def test_a_reveal_batch_records_each_token_s_failure_in_words_that_tokens_show_prints(
    settings_env: None, monkeypatch: pytest.MonkeyPatch, session_factory, cli, migrated_url: str
) -> None:
    from sqlalchemy import text

    from glisk_cli.work import work

    seed_tokens(session_factory, 3)
    with session_factory() as session, session.begin():
        session.execute(text("UPDATE tokens_s0 SET status = 'ready', metadata_cid = 'bafy'"))
    monkeypatch.setenv("GLISK_MAX_ATTEMPTS", "1")
    tx = "0x" + "ab" * 32

    def reveal(tokens: list[Any]) -> list[dict[str, Any]]:
        return [
            {"token_id": 1, "tx_hash": tx},
            {"token_id": 2, "error": "nonce too low"},
            {"token_id": 3, "error": "replacement underpriced"},
        ]

    summary = work("reveal", reveal, batch=3, drain=True)

    assert (summary["succeeded"], summary["failed"]) == (1, 2)
    for token_id, words in ((2, "nonce too low"), (3, "replacement underpriced")):
        env: dict[str, str | None] = {"DATABASE_URL": migrated_url}
        shown = cli("tokens", "show", str(token_id), "--json", env=env)
        [attempt] = json.loads(shown.stdout)["history"]
        assert (attempt["stage"], attempt["outcome"]) == ("reveal", "failed")
        assert attempt["error"]["message"] == words
        assert words in cli("tokens", "show", str(token_id), env=env).stdout
