"""A spec's name: unique per key by default, explicit names claimed by one live spec."""

from __future__ import annotations

import json

import pytest
from pipeline_fakes import BUCKET, sql_spec, world
from test_pipeline_starter import upload

from crq.spec import load_spec
from crq.spec.names import default_name, default_name_for_path
from crq.starter import start_run


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("specs/x.yaml", "x"),
        ("specs/team-a/x.yaml", "team-a/x"),
        ("specs/team-b/x.YAML", "team-b/x"),
        ("specs/a/b/daily.report.json", "a/b/daily.report"),
    ],
)
def test_the_default_name_is_the_key_under_the_prefix_without_extension(
    key: str, name: str
) -> None:
    assert default_name(key, "specs/") == name


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("specs/team-a/x.yaml", "team-a/x"),
        ("/home/me/repo/specs/team-a/x.yaml", "team-a/x"),
        ("examples/specs/channel-mix.yaml", "channel-mix"),
        ("s3://bucket/specs/team-b/x.yml", "team-b/x"),
        ("drafts/x.yaml", "x"),
        ("x.json", "x"),
    ],
)
def test_validate_gives_a_local_file_the_name_it_will_have_once_uploaded(
    path: str, name: str
) -> None:
    assert default_name_for_path(path) == name


def named(name: str) -> str:
    return sql_spec(extra=f"name: {name}\n")


def test_two_specs_in_two_folders_get_two_names() -> None:
    w = world()
    start_run(upload(w, "specs/team-a/x.yaml"), w.deps)
    start_run(upload(w, "specs/team-b/x.yaml"), w.deps)

    names = sorted(run.spec_name for run in w.ledger.rows.values())
    assert names == ["team-a/x", "team-b/x"]
    assert len(w.cleanrooms.started()) == 2


def test_a_second_live_spec_with_the_same_name_is_rejected_naming_the_field() -> None:
    w = world()
    # Given a spec named `weekly` that ran
    assert start_run(upload(w, "specs/a.yaml", named("weekly")), w.deps).outcome == "started"
    # When another spec takes the same name
    result = start_run(upload(w, "specs/b.yaml", named("weekly")), w.deps)
    # Then it is rejected, on field `name`, saying which spec has it, and nothing starts
    assert result.outcome == "rejected"
    assert len(w.cleanrooms.started()) == 1
    [message] = w.publisher.messages
    body = json.loads(message.message)
    assert body["event"] == "SPEC_REJECTED"
    [error] = body["errors"]
    assert error["field"] == "name"
    assert f"s3://{BUCKET}/specs/a.yaml" in error["message"]
    # And the owner itself runs again under its name
    assert start_run(upload(w, "specs/a.yaml", named("weekly")), w.deps).outcome == "started"


def test_a_name_is_released_when_its_spec_is_deleted() -> None:
    w = world()
    start_run(upload(w, "specs/a.yaml", named("weekly")), w.deps)
    w.specs.objects.pop((BUCKET, "specs/a.yaml"))  # deleted

    result = start_run(upload(w, "specs/b.yaml", named("weekly")), w.deps)

    assert result.outcome == "started"
    assert w.ledger.names["weekly"] == "specs/b.yaml"


def test_a_name_is_released_when_its_spec_is_renamed() -> None:
    w = world()
    start_run(upload(w, "specs/a.yaml", named("weekly")), w.deps)
    start_run(upload(w, "specs/a.yaml", named("weekly-v2")), w.deps)  # renamed

    result = start_run(upload(w, "specs/b.yaml", named("weekly")), w.deps)

    assert result.outcome == "started"
    assert w.ledger.names == {"weekly": "specs/b.yaml", "weekly-v2": "specs/a.yaml"}


def test_an_explicit_name_keeps_working_and_wins_over_the_key() -> None:
    spec = load_spec(
        named("weekly").encode(), "s3://b/specs/team-a/x.yaml", default_name="team-a/x"
    )
    assert spec.name == "weekly"
