"""Reading the world: protected queries (newest first, paginated), memberships and templates."""

from __future__ import annotations

from crq_local.engine.testing import (
    CALLER,
    COLLABORATION,
    CONVERSION_ARN,
    MEMBERSHIP,
    OVERLAP_ARN,
    RETAILER,
    Harness,
    MakeHarness,
    example_world,
)


def test_list_protected_queries_newest_first_in_pages(harness: Harness) -> None:
    # (one at a time: the quota allows five running at once)
    started = [harness.wait_for(harness.start(f"SELECT {n} AS n"))["id"] for n in range(7)]
    failed = harness.wait_for(harness.start("SELEC broken"))["id"]
    # Pages of three, newest first, with nextToken between them
    pages, token = [], None
    while True:
        kwargs: dict[str, str] = {"nextToken": token} if token else {}
        page = harness.cleanrooms.list_protected_queries(
            membershipIdentifier=MEMBERSHIP, maxResults=3, **kwargs
        )
        pages.append([q["id"] for q in page["protectedQueries"]])
        token = page.get("nextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [q for p in pages for q in p] == [failed, *reversed(started)]
    # The status filter, and botocore's paginator over the same pages
    only_failed = harness.cleanrooms.list_protected_queries(
        membershipIdentifier=MEMBERSHIP, status="FAILED"
    )
    assert [q["id"] for q in only_failed["protectedQueries"]] == [failed]
    paginator = harness.cleanrooms.get_paginator("list_protected_queries")
    summaries = [
        q
        for page in paginator.paginate(
            membershipIdentifier=MEMBERSHIP, status="SUCCESS", PaginationConfig={"PageSize": 2}
        )
        for q in page["protectedQueries"]
    ]
    assert [q["id"] for q in summaries] == list(reversed(started))
    assert summaries[0]["receiverConfigurations"] == [
        {
            "analysisType": "DIRECT_ANALYSIS",
            "configurationDetails": {
                "directAnalysisConfigurationDetails": {"receiverAccountIds": [CALLER]}
            },
        }
    ]


def test_a_bad_next_token_is_refused(harness: Harness) -> None:
    errors = harness.cleanrooms.exceptions
    try:
        harness.cleanrooms.list_protected_queries(
            membershipIdentifier=MEMBERSHIP, nextToken="not-a-token"
        )
    except errors.ValidationException as exc:
        assert exc.response["fieldList"][0]["name"] == "nextToken"
    else:
        raise AssertionError("expected a ValidationException")


def test_membership(harness: Harness) -> None:
    membership = harness.cleanrooms.get_membership(membershipIdentifier=MEMBERSHIP)["membership"]
    assert membership["id"] == MEMBERSHIP
    assert membership["arn"] == f"arn:aws:cleanrooms:us-east-1:{CALLER}:membership/{MEMBERSHIP}"
    assert membership["collaborationId"] == COLLABORATION
    assert membership["collaborationName"] == "retail-media"
    assert membership["collaborationCreatorDisplayName"] == "Advertiser"
    assert membership["memberAbilities"] == ["CAN_QUERY", "CAN_RECEIVE_RESULTS"]
    assert membership["status"] == "ACTIVE"


def test_list_memberships_is_the_callers_only_and_paginates(make_harness: MakeHarness) -> None:
    world = example_world()
    for n in range(2):
        world["collaborations"].append(
            {
                "name": f"extra-{n}",
                "members": [{"accountId": CALLER, "abilities": ["CAN_QUERY"]}],
            }
        )
    harness = make_harness(world)
    first = harness.cleanrooms.list_memberships(maxResults=2)
    second = harness.cleanrooms.list_memberships(maxResults=2, nextToken=first["nextToken"])
    assert "nextToken" not in second
    summaries = first["membershipSummaries"] + second["membershipSummaries"]
    assert [m["collaborationName"] for m in summaries] == [
        "retail-media",
        "retail-media-protected",
        "extra-0",
        "extra-1",
    ]
    assert RETAILER not in {m["arn"].split(":")[4] for m in summaries}
    assert harness.cleanrooms.list_memberships(status="REMOVED")["membershipSummaries"] == []


def test_analysis_templates(harness: Harness) -> None:
    listed = harness.cleanrooms.list_analysis_templates(membershipIdentifier=MEMBERSHIP)
    assert [(t["name"], t["arn"]) for t in listed["analysisTemplateSummaries"]] == [
        ("audience_overlap", OVERLAP_ARN),
        ("conversion_by_campaign", CONVERSION_ARN),
    ]
    page = harness.cleanrooms.list_analysis_templates(membershipIdentifier=MEMBERSHIP, maxResults=1)
    assert len(page["analysisTemplateSummaries"]) == 1 and page["nextToken"]

    template = harness.cleanrooms.get_analysis_template(
        membershipIdentifier=MEMBERSHIP,
        analysisTemplateIdentifier="3d9a7c15-2e4b-4f68-b0a1-7c5e9d2f1a64",
    )["analysisTemplate"]
    assert template["arn"] == OVERLAP_ARN
    assert template["format"] == "SQL"
    assert ":start_date" in template["source"]["text"]
    assert template["analysisParameters"] == [
        {"name": "start_date", "type": "DATE", "defaultValue": "2026-01-01"},
        {"name": "end_date", "type": "DATE"},
    ]
    assert template["schema"]["referencedTables"] == ["impressions", "purchases"]

    shared = harness.cleanrooms.get_collaboration_analysis_template(
        collaborationIdentifier=COLLABORATION, analysisTemplateArn=CONVERSION_ARN
    )["collaborationAnalysisTemplate"]
    assert shared["name"] == "conversion_by_campaign"
    assert shared["creatorAccountId"] == CALLER
    assert shared["analysisParameters"] == [
        {"name": "window_days", "type": "INTEGER", "defaultValue": "30"}
    ]
