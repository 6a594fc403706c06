"""Spec schedules' names: deterministic, within Scheduler's rules, one per spec key."""

from __future__ import annotations

import re

import pytest

from crq.schedule_state import comparable_sequencer, schedule_name, state_id

SCHEDULER_NAME = re.compile(r"[0-9A-Za-z_.-]{1,64}")


@pytest.mark.parametrize(
    "key",
    [
        "specs/weekly-overlap.yaml",
        "specs/team-a/x.yaml",
        "specs/" + "very-long-name-" * 20 + ".yaml",
        "specs/ümlaut und space (1).json",
        "specs/.hidden.yml",
        "specs/...yaml",
    ],
)
def test_names_fit_scheduler_and_read_well(key: str) -> None:
    name = schedule_name(key)
    assert SCHEDULER_NAME.fullmatch(name), name
    assert name == schedule_name(key)  # deterministic
    assert name.startswith("crq-")


def test_the_stem_is_readable() -> None:
    assert schedule_name("specs/weekly-overlap.yaml").startswith("crq-weekly-overlap-")


def test_same_file_name_in_two_folders_gets_two_schedules() -> None:
    assert schedule_name("specs/team-a/x.yaml") != schedule_name("specs/team-b/x.yaml")
    assert state_id("b", "specs/team-a/x.yaml") != state_id("b", "specs/team-b/x.yaml")
    assert state_id("b", "specs/x.yaml").startswith("spec:")


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("617f08299329d189", "617f0837b476e463"),
        ("FFFFFFFFFFFFFFFF", "10000000000000000"),  # a longer sequencer is later (left-padded)
        ("0a", "0B"),
        (None, "01"),
    ],
)
def test_sequencers_compare_as_s3_says(earlier: str | None, later: str) -> None:
    assert comparable_sequencer(earlier) < comparable_sequencer(later)
