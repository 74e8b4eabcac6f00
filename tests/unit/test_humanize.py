"""The words people read: durations, leases, timestamps, shortened values, colour."""

import io
from datetime import UTC, datetime, timedelta

import pytest

from glisk_cli.cli import humanize

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42, "42s"), (185, "3m 05s"), (53_267, "14h 47m"), (3 * 86_400 + 7_200, "3d 02h")],
)
def test_durations_keep_the_two_largest_units(seconds: float, text: str) -> None:
    assert humanize.duration(seconds) == text
    assert humanize.duration(timedelta(seconds=seconds)) == text


def test_relative_times_say_which_way() -> None:
    assert humanize.relative(NOW + timedelta(minutes=8, seconds=12), NOW) == "in 8m 12s"
    assert humanize.relative(NOW - timedelta(minutes=3, seconds=5), NOW) == "3m 05s ago"


def test_a_lease_says_how_long_is_left_or_since_when_it_is_over() -> None:
    later, earlier = NOW + timedelta(minutes=8, seconds=12), NOW - timedelta(minutes=2)
    assert humanize.lease(later, "w1", NOW) == "in 8m 12s"
    assert humanize.lease(earlier, "w1", NOW) == "expired 2m 00s ago"
    assert humanize.lease(later, None, NOW) == "retry in 8m 12s"  # a lease nobody holds
    assert humanize.lease(earlier, None, NOW) == "retry due"
    assert humanize.lease(None, None, NOW) == "-"


def test_timestamps_are_to_the_second_in_utc() -> None:
    value = datetime(2026, 11, 29, 1, 57, 54, 874887, tzinfo=UTC)
    assert humanize.timestamp(value) == "2026-11-29 01:57:54Z"
    assert humanize.timestamp(None) == "-"


def test_long_values_are_shortened_in_the_middle_or_at_the_end() -> None:
    address = "0xc4ca4238a0b923820dcc509a6f75849b00000000"
    assert humanize.middle(address, 11) == "0xc4c…00000"
    assert humanize.middle("short", 11) == "short"
    assert len(humanize.middle(address, 16)) == 16
    assert humanize.end("a prompt\nover two lines", 12) == "a prompt ov…"
    assert humanize.end(None, 5) == "-"


def test_an_error_shows_its_first_line() -> None:
    assert humanize.first_line("boom\ntraceback…") == "boom"
    assert humanize.first_line({"message": "timed out\nmore"}) == "timed out"
    assert humanize.first_line({"reason": "max_attempts"}) == "max_attempts"
    assert humanize.first_line(None) == "-"


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert humanize.colour(Terminal()) is True
    assert humanize.colour(io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert humanize.colour(Terminal()) is False
