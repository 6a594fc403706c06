"""The collaboration file: the example loads, and a malformed file names the file, key and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from crq_local.engine import CollaborationFileError, Engine, load_config
from crq_local.engine.config import derived_id
from crq_local.engine.testing import EXAMPLE, MEMBERSHIP, OVERLAP_ARN, example_world


def write(tmp_path: Path, world: Any) -> Path:
    """A collaboration file next to a copy of the example data (relative paths resolve)."""
    (tmp_path / "data").mkdir(exist_ok=True)
    for file in (EXAMPLE.parent / "data").iterdir():
        target = tmp_path / "data" / file.name
        if not target.exists():
            target.symlink_to(file)
    path = tmp_path / "collaboration.yaml"
    path.write_text(world if isinstance(world, str) else yaml.safe_dump(world))
    return path


def refusal(tmp_path: Path, world: Any) -> str:
    path = write(tmp_path, world)
    with pytest.raises(CollaborationFileError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    return message


def test_the_example_loads_with_its_fixed_ids() -> None:
    engine = Engine(load_config(EXAMPLE))
    assert MEMBERSHIP in engine.world.memberships
    assert OVERLAP_ARN in engine.world.templates_by_arn
    tables = engine.world.collaborations["5a3e8c1d-7b2f-4d69-8e0a-1f4c6b9d2e75"].tables
    assert [(t.name, t.file_format) for t in tables] == [
        ("impressions", "csv"),
        ("purchases", "parquet"),
    ]


def test_ids_left_out_are_derived_and_stable(tmp_path: Path) -> None:
    world = example_world()
    del world["collaborations"][0]["members"][1]["membershipId"]
    del world["collaborations"][0]["analysisTemplates"][1]["id"]
    first, second = load_config(write(tmp_path, world)), load_config(write(tmp_path, world))
    assert Engine(first).world.memberships.keys() == Engine(second).world.memberships.keys()
    assert derived_id("membership", "retail-media", "222222222222") in (
        Engine(first).world.memberships
    )


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (lambda w: w.update(accountId="1234"), "accountId", "pattern"),
        (lambda w: w.update(colaborations=[]), "colaborations", "unknown key"),
        (
            lambda w: w["collaborations"][0]["members"][0].update(abilities=["CAN_DANCE"]),
            "collaborations[0].members[0].abilities[0]",
            "CAN_QUERY",
        ),
        (
            lambda w: w["collaborations"][0]["members"][1].update(membershipId="NOT-A-UUID"),
            "collaborations[0].members[1].membershipId",
            "pattern",
        ),
        (
            lambda w: w["collaborations"][0]["tables"][0].update(path="data/missing.csv"),
            "collaborations[0].tables[0].path",
            "no such file",
        ),
        (
            lambda w: w["collaborations"][0]["tables"][1].update(columns=["amount", "price"]),
            "collaborations[0].tables[1].columns[1]",
            "'price' is not a column",
        ),
        (
            lambda w: w["collaborations"][0]["tables"][1].update(name="purchases; DROP"),
            "collaborations[0].tables[1].name",
            "pattern",
        ),
        (
            lambda w: w["collaborations"][0]["analysisTemplates"][0]["parameters"].pop(),
            "collaborations[0].analysisTemplates[0]",
            ":end_date, not declared",
        ),
        (
            lambda w: w["collaborations"][0]["analysisTemplates"][0]["parameters"][0].update(
                type="DATETIME"
            ),
            "collaborations[0].analysisTemplates[0].parameters[0].type",
            "must be one of",
        ),
        (
            lambda w: w["collaborations"][0]["members"].pop(0),
            "collaborations[0].members",
            "caller account 111111111111 is not a member",
        ),
        (
            lambda w: w["collaborations"][0]["members"][1].update(membershipId=MEMBERSHIP),
            "collaborations[0].members[1].membershipId",
            "is already the id at collaborations[0].members[0].membershipId",
        ),
        (
            lambda w: w.update(faults={"slow": "soonish"}),
            "faults.slow",
            "not a duration",
        ),
        (
            lambda w: w.update(faults={"dropEvents": ["STARTED", "DONE"]}),
            "faults.dropEvents",
            "",
        ),
    ],
)
def test_a_malformed_file_is_refused_with_the_key_and_reason(
    tmp_path: Path, change: Any, key: str, reason: str
) -> None:
    world = example_world()
    change(world)
    message = refusal(tmp_path, world)
    assert f": {key}" in message
    assert reason in message


def test_not_yaml_or_not_a_mapping(tmp_path: Path) -> None:
    assert "not valid YAML" in refusal(tmp_path, "collaborations: [\n")
    assert "must be a mapping" in refusal(tmp_path, "- just\n- a list\n")


def test_yaml_tags_never_construct_objects(tmp_path: Path) -> None:
    assert "not valid YAML" in refusal(tmp_path, "accountId: !!python/object/apply:os.getcwd []\n")


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CollaborationFileError, match="cannot be read"):
        load_config(tmp_path / "nowhere.yaml")
