"""Routes come from botocore's model: each operation's method, URI and member locations."""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import quote

import pytest
from werkzeug.wrappers import Request

from crq_local.engine import Engine, load_config
from crq_local.engine.testing import EXAMPLE, MEMBERSHIP, OVERLAP_ARN
from crq_local.engine.wsgi import make_app, parse, resolve

QUERY = "0b7d5e21-93c4-4f0a-8e6d-5c1a2f9b4e38"


@pytest.mark.parametrize(
    ("method", "path", "operation", "labels"),
    [
        ("POST", f"/memberships/{MEMBERSHIP}/protectedQueries", "StartProtectedQuery", {}),
        ("GET", f"/memberships/{MEMBERSHIP}/protectedQueries", "ListProtectedQueries", {}),
        (
            "GET",
            f"/memberships/{MEMBERSHIP}/protectedQueries/{QUERY}",
            "GetProtectedQuery",
            {"protectedQueryIdentifier": QUERY},
        ),
        (
            "PATCH",
            f"/memberships/{MEMBERSHIP}/protectedQueries/{QUERY}",
            "UpdateProtectedQuery",
            {"protectedQueryIdentifier": QUERY},
        ),
        ("GET", f"/memberships/{MEMBERSHIP}", "GetMembership", {}),
        ("GET", "/memberships", "ListMemberships", None),
        ("GET", f"/memberships/{MEMBERSHIP}/analysistemplates", "ListAnalysisTemplates", {}),
        (
            "GET",
            f"/collaborations/{QUERY}/analysistemplates/{quote(OVERLAP_ARN, safe='')}",
            "GetCollaborationAnalysisTemplate",
            {"collaborationIdentifier": QUERY, "analysisTemplateArn": OVERLAP_ARN},
        ),
        ("GET", "/collaborations", "ListCollaborations", None),
    ],
)
def test_routes(method: str, path: str, operation: str, labels: dict[str, str] | None) -> None:
    found = resolve(method, path)
    assert found is not None
    found_operation, params = found
    assert found_operation == operation
    if labels is not None:
        assert params == (
            {"membershipIdentifier": MEMBERSHIP} | labels if "/memberships/" in path else labels
        )


def test_querystring_members_are_typed() -> None:
    engine = Engine(load_config(EXAMPLE))
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": f"/memberships/{MEMBERSHIP}/protectedQueries",
        "QUERY_STRING": "maxResults=2&status=FAILED",
        "wsgi.input": io.BytesIO(),
    }
    assert parse(engine, Request(environ)) == (
        "ListProtectedQueries",
        {"membershipIdentifier": MEMBERSHIP, "maxResults": 2, "status": "FAILED"},
    )
    environ["QUERY_STRING"] = "maxResults=two"
    captured: list[str] = []
    body = b"".join(make_app(engine)(environ, lambda status, headers: captured.append(status)))
    assert captured == ["400 Bad Request"]
    assert json.loads(body)["fieldList"] == [
        {"name": "maxResults", "message": "must be an integer"}
    ]
