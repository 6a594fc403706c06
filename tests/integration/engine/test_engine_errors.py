"""Error answers that need a world of their own (the shared cases: test_engine_refusals.py)."""

from __future__ import annotations

from typing import Any

import pytest

from crq_local.engine.testing import (
    RETAILER,
    MakeHarness,
    example_world,
)


def fields(exc: Any) -> dict[str, str]:
    return {f["name"]: f["message"] for f in exc.response.get("fieldList", [])}


# ---- ValidationException -------------------------------------------------------------------


def test_clean_rooms_sql_collaborations_take_no_spark_settings(
    make_harness: MakeHarness,
) -> None:
    world = example_world()
    world["collaborations"][0]["analyticsEngine"] = "CLEAN_ROOMS_SQL"
    harness = make_harness(world)
    with pytest.raises(harness.cleanrooms.exceptions.ValidationException) as caught:
        harness.start(
            "SELECT 1 AS one", computeConfiguration={"worker": {"type": "CR.1X", "number": 4}}
        )
    assert caught.value.response["reason"] == "INVALID_CONFIGURATION"
    with pytest.raises(harness.cleanrooms.exceptions.ValidationException):
        harness.start("SELECT 1 AS one", output=harness.s3_output(singleFileOutput=True))
    query = harness.finish(harness.start("SELECT 1 AS one"))
    assert query["status"] == "SUCCESS"
    assert query["statistics"]["billedResourceUtilization"]["units"] > 0


def test_receivers_need_the_ability_to_receive_results(make_harness: MakeHarness) -> None:
    world = example_world()
    members = world["collaborations"][0]["members"]
    members[0]["abilities"] = ["CAN_QUERY"]
    members.append({"accountId": "333333333333", "abilities": []})
    harness = make_harness(world)
    with pytest.raises(harness.cleanrooms.exceptions.ValidationException) as s3_caught:
        harness.start("SELECT 1 AS one")
    assert "resultConfiguration.outputConfiguration.s3" in fields(s3_caught.value)
    with pytest.raises(harness.cleanrooms.exceptions.ValidationException) as member_caught:
        harness.start(
            "SELECT 1 AS one",
            output={"outputConfiguration": {"member": {"accountId": "333333333333"}}},
        )
    assert member_caught.value.response["reason"] == "INVALID_CONFIGURATION"
    # the retailer can receive: a query that only the retailer receives runs
    query_id = harness.start(
        "SELECT 1 AS one", output={"outputConfiguration": {"member": {"accountId": RETAILER}}}
    )
    assert harness.finish(query_id)["status"] == "SUCCESS"


# ---- AccessDeniedException, ConflictException -------------------------------------------------


def test_a_membership_without_can_query_cannot_start(make_harness: MakeHarness) -> None:
    world = example_world()
    world["collaborations"][0]["members"][0]["abilities"] = ["CAN_RECEIVE_RESULTS"]
    harness = make_harness(world)
    with pytest.raises(harness.cleanrooms.exceptions.AccessDeniedException) as caught:
        harness.start("SELECT 1 AS one")
    assert caught.value.response["reason"] == "INSUFFICIENT_PERMISSIONS"
