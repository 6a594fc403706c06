"""Docs that count things agree with what they list."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5}


def test_the_dead_letter_queue_lists_every_kind_of_message_it_says_it_holds() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    match = re.search(r"The queue holds (\w+) kinds of messages:\n\n((?:(?:- |  ).*\n)+)", text)
    assert match, "docs/deploy.md: the dead-letter queue's kinds of messages are not listed"
    listed = [line for line in match.group(2).splitlines() if line.startswith("- ")]

    assert NUMBERS[match.group(1)] == len(listed)
    # one per sender: Lambda's OnFailure destination, the rules, the schedules (template.yaml)
    assert [("requestPayload" in k, "rule" in k, "Scheduler" in k) for k in listed] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]


def test_the_readme_says_which_pythons_the_makefile_looks_for() -> None:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^PYTHON_CANDIDATES := (.+)$", makefile, re.MULTILINE)
    assert match
    readme = (ROOT / "README.md").read_text()
    assert "Python 3.11 or newer" in readme
    for candidate in match.group(1).split():
        assert f"`{candidate}`" in readme, candidate
