"""Passwords never leave glisk: URLs and libpq strings are masked wherever they appear."""

import pytest

from glisk_cli.redact import mask_url, redact


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://glisk:s3cret@db:5432/glisk", "postgresql://glisk:***@db:5432/glisk"),
        (
            "postgresql+psycopg://u:p%40ss@h/d?sslmode=require",
            "postgresql+psycopg://u:***@h/d?sslmode=require",
        ),
        ("postgresql://u:we:ird@pw@h/d", "postgresql://u:***@h/d"),
        ("postgresql://u@h/d", "postgresql://u@h/d"),
        ("postgresql://h:5432/d", "postgresql://h:5432/d"),
    ],
)
def test_mask_url_hides_only_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_redact_masks_urls_and_password_pairs_inside_free_text() -> None:
    text = (
        "failed postgresql://glisk:hunter2@db/glisk and host=db password=hunter2 "
        "and password='two words'"
    )
    redacted = redact(text)
    assert "hunter2" not in redacted
    assert "two words" not in redacted
    assert "postgresql://glisk:***@db/glisk" in redacted


def test_redact_leaves_text_without_secrets_alone() -> None:
    text = 'connection to server at "127.0.0.1", port 1 failed: Connection refused'
    assert redact(text) == text
