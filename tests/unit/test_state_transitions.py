"""The token state machine, on model objects alone — no database involved."""

from datetime import UTC, datetime

import pytest

from glisk_cli.models import InvalidStateTransition, NaiveDatetimeError, Token, TokenStatus
from glisk_cli.pipeline import STAGE_OF


def new_token(status: TokenStatus = TokenStatus.DETECTED) -> Token:
    return Token(
        token_id=1,
        minter_address="0x" + "1" * 40,
        status=status,
        mint_timestamp=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_valid_state_transitions() -> None:
    token = new_token()
    token.mark_generating()
    assert token.status is TokenStatus.GENERATING
    token.mark_uploading("images/1.png")
    assert token.status is TokenStatus.UPLOADING
    assert token.image_path == "images/1.png"
    token.mark_ready("bafymetadata")
    assert token.status is TokenStatus.READY
    assert token.metadata_cid == "bafymetadata"
    token.mark_revealed("0xabc")
    assert token.status is TokenStatus.REVEALED
    assert token.reveal_tx_hash == "0xabc"


def test_invalid_state_transition_raises_exception() -> None:
    token = new_token()
    with pytest.raises(InvalidStateTransition) as caught:
        token.mark_revealed("0xabc")
    assert str(caught.value) == "Cannot mark revealed from detected. Token must be in ready state."
    assert token.status is TokenStatus.DETECTED
    assert caught.value.exit_code == 6


@pytest.mark.parametrize(
    "status",
    [TokenStatus.DETECTED, TokenStatus.GENERATING, TokenStatus.UPLOADING, TokenStatus.READY],
)
def test_mark_failed_from_any_non_terminal_state(status: TokenStatus) -> None:
    token = new_token(status)
    token.mark_failed({"error": "test"})
    assert token.status is TokenStatus.FAILED
    assert token.error_data == {"error": "test", "stage": STAGE_OF[status].name.value}


def test_mark_failed_keeps_the_error_recorded_before_it() -> None:
    token = new_token(TokenStatus.UPLOADING)
    token.error_data = {"message": "pin timed out", "attempt": 3}
    token.mark_failed({"message": "given up by the operator"})
    assert token.error_data == {
        "message": "given up by the operator",
        "stage": "upload",
        "earlier": {"message": "pin timed out", "attempt": 3},
    }


@pytest.mark.parametrize("status", [TokenStatus.REVEALED, TokenStatus.FAILED])
def test_terminal_states_accept_no_transition(status: TokenStatus) -> None:
    token = new_token(status)
    with pytest.raises(InvalidStateTransition) as caught:
        token.mark_failed({"error": "late"})
    assert str(caught.value) == (
        f"Cannot mark failed from {status.value}. Token is already in a terminal state."
    )
    with pytest.raises(InvalidStateTransition, match="already in a terminal state"):
        token.mark_generating()


def test_every_transition_ends_the_lease_and_stamps_updated_at_from_the_database_clock() -> None:
    token = new_token(TokenStatus.GENERATING)
    token.claimed_by = "worker-1"
    token.lease_expires_at = datetime(2030, 1, 1, tzinfo=UTC)
    token.attempts = 3
    token.mark_uploading("images/1.png")
    assert token.claimed_by is None
    assert token.lease_expires_at is None
    # A SQL now(), evaluated by PostgreSQL when the change is flushed: no worker's clock.
    assert str(token.updated_at) == "now()"
    assert token.attempts == 0  # attempts count the claims of the current stage


def test_new_tokens_start_detected_with_no_attempts() -> None:
    token = Token(token_id=2, minter_address="0x" + "2" * 40)
    assert token.status is TokenStatus.DETECTED
    assert token.attempts == 0


def test_naive_timestamps_are_refused_at_the_model_boundary() -> None:
    with pytest.raises(NaiveDatetimeError, match="no time zone"):
        Token(token_id=3, minter_address="0x" + "3" * 40, mint_timestamp=datetime(2026, 1, 1))
