"""A run's request fingerprint: how a query Clean Rooms knows is recognised as the run's own.

A StartProtectedQuery whose answer was lost (a timeout, a crash) may or may not have started a
query; reconciliation lists the membership's queries and takes the one whose request matches
the run's fingerprint. Parameter values are sensitive, so only keyed (salted) hashes are stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from crq.ledger import Run
from crq.ports import ProtectedQuery


def request_fingerprint(request: Mapping[str, Any], salt: str) -> str:
    """`<what>:<where>`: keyed hashes of the query (text or template ARN, parameters with their
    values) and of the result destinations. Parameter values are sensitive, so only a salted
    hash of them is stored."""
    sql = request.get("sqlParameters") or {}
    what = {
        "query": sql.get("queryString") or sql.get("analysisTemplateArn") or "",
        "parameters": sql.get("parameters") or {},
    }
    return f"{_keyed(salt, what)}:{_keyed(salt, _destinations(request))}"


def fingerprint_matches(run: Run, query: ProtectedQuery) -> bool:
    if not run.request_fingerprint or not run.fingerprint_salt:
        return False
    expected_what, _, expected_where = run.request_fingerprint.partition(":")
    seen = {"sqlParameters": query.sql_parameters or {}}
    if query.result_configuration is not None:
        seen["resultConfiguration"] = query.result_configuration
    what, _, where = request_fingerprint(seen, run.fingerprint_salt).partition(":")
    if not hmac.compare_digest(what, expected_what):
        return False
    # Destinations are compared only when Clean Rooms returns them.
    return query.result_configuration is None or hmac.compare_digest(where, expected_where)


def _destinations(request: Mapping[str, Any]) -> list[list[str]]:
    output = (request.get("resultConfiguration") or {}).get("outputConfiguration") or {}
    locations = [output, *((output.get("distribute") or {}).get("locations") or [])]
    found = []
    for location in locations:
        if s3 := location.get("s3"):
            found.append(["s3", s3.get("bucket", ""), s3.get("keyPrefix", "")])
        if member := location.get("member"):
            found.append(["member", member.get("accountId", "")])
    return sorted(found)


def _keyed(salt: str, value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(salt.encode(), canonical.encode(), hashlib.sha256).hexdigest()
