"""`glisk stage list|pause|resume|limit|cooldown` end to end (in-process, real PostgreSQL): the
JSON shape of `stage list`, each change shown by the next list, limits lifted with `none`, and
bad input — exit 2, one `error: …` line on stderr, nothing on stdout, nothing changed."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.cli.outputs import assert_one_error_line, moment
from tests.conftest import seed_tokens

STAGES = ["generation", "upload", "reveal"]
KEYS = [
    "stage",
    "state",
    "paused",
    "cooldown",
    "concurrency",
    "rate",
    "blocked",
    "waiting",
    "in_flight",
]


@pytest.fixture
def stages(glisk):
    """`glisk stage list --json`, by stage name."""

    def run() -> dict[str, dict[str, Any]]:
        listed = json.loads(glisk("stage", "list", "--json").stdout)
        assert [stage["stage"] for stage in listed] == STAGES
        return {stage["stage"]: stage for stage in listed}

    return run


def test_list_json_has_every_stage_with_its_controls_and_counts(
    stages, session_factory, glisk
) -> None:
    seed_tokens(session_factory, 3)
    seed_tokens(session_factory, 2, status="ready", first_id=10)
    glisk("tokens", "claim", "--limit", "1", "--worker", "w1")
    listed = stages()
    for stage in listed.values():
        assert list(stage) == KEYS
    generation = listed["generation"]
    assert generation == {
        "stage": "generation",
        "state": "running",
        "paused": None,
        "cooldown": None,
        "concurrency": {"limit": None, "running": 1, "holders": ["w1"]},
        "rate": {"limit": None, "burst": 1, "bucket": None, "next_start_at": None},
        "blocked": None,
        "waiting": 2,
        "in_flight": 1,
    }
    assert (listed["reveal"]["waiting"], listed["reveal"]["in_flight"]) == (2, 0)
    assert (listed["upload"]["waiting"], listed["upload"]["in_flight"]) == (0, 0)


def test_list_for_people_is_a_table_of_the_stages(cli, migrated_url: str, glisk) -> None:
    glisk("stage", "pause", "upload", "--reason", "pinning outage", "--until", "1h")
    glisk("stage", "limit", "reveal", "--concurrency", "1")
    glisk("stage", "cooldown", "generation", "90s", "--reason", "429")
    wide = cli("stage", "list", env={"DATABASE_URL": migrated_url, "COLUMNS": "160"})
    lines = wide.stdout.splitlines()
    assert lines[0].split() == ["stage", "state", "jobs", "rate", "waiting", "in", "flight", "why"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(STAGES)
    assert rows["upload"].split()[1] == "paused"
    assert re.search(r"paused, resumes in 59m \d\ds: pinning outage$", rows["upload"])
    assert rows["generation"].split()[1] == "cooling"
    assert re.search(r"cooling down, ends in 1m \d\ds: 429$", rows["generation"])
    # a limit with room left holds nothing back: no why
    assert rows["reveal"].split() == ["reveal", "running", "0/1", "-", "0", "0"]


def test_pause_with_a_reason_until_a_duration_then_resume(glisk, stages) -> None:
    said = glisk("stage", "pause", "generation", "--reason", "GPU maintenance", "--until", "2h")
    assert said.stdout == ""
    assert said.stderr == "paused generation\n"
    generation = stages()["generation"]
    assert generation["state"] == "paused"
    assert generation["paused"]["reason"] == "GPU maintenance"
    left = moment(generation["paused"]["until"]) - datetime.now(UTC)
    assert timedelta(hours=1, minutes=59) < left <= timedelta(hours=2)
    assert moment(generation["paused"]["since"]) <= datetime.now(UTC)
    assert generation["blocked"]["reason"] == "paused"
    assert stages()["upload"]["state"] == "running"  # the others go on

    glisk("stage", "resume", "generation")
    generation = stages()["generation"]
    assert (generation["state"], generation["paused"], generation["blocked"]) == (
        "running",
        None,
        None,
    )


def test_pause_until_an_iso_time_and_with_no_end(glisk, stages) -> None:
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    stamp = until.isoformat().replace("+00:00", "Z")
    shown = json.loads(glisk("stage", "pause", "reveal", "--until", stamp, "--json").stdout)
    assert moment(shown["paused"]["until"]) == until
    glisk("stage", "pause", "upload")
    listed = stages()
    assert moment(listed["reveal"]["paused"]["until"]) == until
    assert listed["upload"]["paused"]["until"] is None
    assert listed["upload"]["paused"]["reason"] is None


def test_limit_sets_concurrency_rate_and_burst_and_none_lifts_them(glisk, stages) -> None:
    said = glisk(
        "stage", "limit", "generation", "--concurrency", "2", "--rate", "10/s", "--burst", "3"
    )
    assert said.stderr == "limits of generation: at most 2 jobs at once, 10/s, burst 3\n"
    generation = stages()["generation"]
    assert generation["concurrency"] == {"limit": 2, "running": 0, "holders": []}
    assert generation["rate"]["limit"] == "10/s"
    assert generation["rate"]["burst"] == 3
    assert generation["rate"]["bucket"] == pytest.approx(3)  # a new rate starts full
    assert generation["blocked"] is None

    glisk("stage", "limit", "generation", "--concurrency", "none")
    generation = stages()["generation"]
    assert generation["concurrency"]["limit"] is None
    assert generation["rate"]["limit"] == "10/s"  # left as it was

    glisk("stage", "limit", "generation", "--rate", "none")
    generation = stages()["generation"]
    assert (generation["rate"]["limit"], generation["rate"]["bucket"]) == (None, None)
    assert (
        "limits of generation: no concurrency limit, no rate limit"
        in glisk("stage", "limit", "generation", "--concurrency", "NONE").stderr
    )


def test_a_rate_per_minute(glisk, stages) -> None:
    shown = json.loads(glisk("stage", "limit", "upload", "--rate", "30/m", "--json").stdout)
    assert shown["rate"]["limit"] == "30/m"
    assert stages()["upload"]["rate"]["limit"] == "30/m"


def test_cooldown_then_zero_ends_it(glisk, stages) -> None:
    said = glisk("stage", "cooldown", "upload", "30s")
    assert said.stderr.startswith("upload cools down until ")
    upload = stages()["upload"]
    assert upload["state"] == "cooling_down"
    assert upload["cooldown"]["reason"] == "by hand"
    left = moment(upload["cooldown"]["until"]) - datetime.now(UTC)
    assert timedelta(seconds=25) < left <= timedelta(seconds=30)
    assert upload["blocked"]["reason"] == "cooling_down"

    glisk("stage", "cooldown", "upload", "0s")
    upload = stages()["upload"]
    assert (upload["state"], upload["cooldown"], upload["blocked"]) == ("running", None, None)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["pause", "minting"], "minting"),
        (["resume", "minting"], "minting"),
        (["limit", "minting", "--concurrency", "2"], "minting"),
        (["cooldown", "minting", "30s"], "minting"),
        (["limit", "generation", "--concurrency", "0"], "at least 1"),
        (["limit", "generation", "--concurrency", "-1"], "at least 1"),
        (["limit", "generation", "--concurrency", "abc"], "not a whole number"),
        (["limit", "generation", "--rate", "0/s"], "from 1 to"),
        (["limit", "generation", "--rate", "10/h"], "invalid rate"),
        (["limit", "generation", "--rate", "fast"], "invalid rate"),
        (["limit", "generation", "--burst", "0"], "--burst"),
        (["limit", "generation"], "--concurrency, --rate or --burst"),
        (["cooldown", "generation", "soon"], "invalid duration"),
        (["cooldown", "generation", "-5s"], "-5"),  # an option to Click: still exit 2
        (["cooldown", "generation", "2d"], "cooldown"),
        (["cooldown", "generation", "8d"], "a cooldown is 0s to 1d"),  # not a retry delay's cap
        (["pause", "generation", "--until", "soon"], "not a timestamp"),
        (["pause", "generation", "--until", "0s"], "in the future"),
        (["pause", "generation", "--until", "99999999d"], "too far in the future"),
        (["pause", "generation", "--until", "2020-01-01T00:00:00Z"], "in the past"),
        (["pause", "generation", "--until", "2099-01-01T00:00:00"], "time zone"),
        (["pause", "generation", "--reason", "x" * 501], "500"),
    ],
)
def test_bad_input_is_exit_2_with_one_line_and_changes_nothing(
    glisk, stages, args: list[str], needle: str
) -> None:
    glisk("stage", "limit", "generation", "--concurrency", "4", "--rate", "5/m")
    before = stages()
    result = glisk("stage", *args, expect=2)
    assert_one_error_line(result, needle)
    after = stages()
    for stage in STAGES:  # the bucket refills as time passes; nothing else may move
        before[stage]["rate"].pop("bucket")
        after[stage]["rate"].pop("bucket")
    assert after == before


def test_bad_input_with_json_is_one_json_error_on_stderr(glisk) -> None:
    result = glisk("stage", "limit", "generation", "--rate", "0/s", "--json", expect=2)
    assert result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "invalid_input"
    assert "0/s" in error["message"]


def test_a_pause_until_a_past_time_leaves_no_row_behind(glisk, session_factory) -> None:
    # The first change of a stage's controls makes its row; a refused one must not.
    from sqlalchemy import text

    glisk("stage", "pause", "generation", "--until", "2020-01-01T00:00:00Z", expect=2)
    with session_factory() as session:
        count = session.execute(text("SELECT count(*) FROM stage_controls")).scalar_one()
    assert count == 0
