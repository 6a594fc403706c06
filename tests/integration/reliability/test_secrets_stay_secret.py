"""Security: a query parameter value never reaches logs, notifications or the ledger.

Analysis template parameters are `sensitive` in the Clean Rooms API. A value planted in specs is
followed through every way a run can go: a success, a retried failure, a failure whose Clean
Rooms error quotes the value, a start Clean Rooms refuses because of the value, and rejections
(a bad field elsewhere, a YAML error on the value's own line, a bad placeholder inside it), and
a refusal whose message quotes the value.

Already proven in tests/integration/pipeline/test_pipeline_observability.py: a success and a
failure quoting the value (`test_a_parameter_value_never_reaches_logs_notifications_or_the_ledger`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from reliability_support import MEMBERSHIP, TICK, StartFaults, bodies, settle

from crq_local.engine import EngineConfig, parse_config
from crq_local.engine.testing import EXAMPLE, example_world

SECRET = "tok-PLANTED-SECRET-4417"
TEMPLATES = {
    # name: (id, SQL, parameter type)
    "lookup": (
        "0d6e1f2a-3b4c-4d5e-8f6a-7b8c9d0e1f2a",
        "SELECT channel, COUNT(*) AS n FROM impressions WHERE channel <> :token GROUP BY channel",
        "VARCHAR",
    ),
    "flaky": (
        "1e7f2a3b-4c5d-4e6f-9a7b-8c9d0e1f2a3b",
        "SELECT COUNT(*) AS n FROM impressions WHERE channel <> :token\n"
        "-- crq-fault: fail code=INTERNAL_ERROR retryable=true first=1",
        "VARCHAR",
    ),
    "strict": (
        "2f8a3b4c-5d6e-4f7a-8b8c-9d0e1f2a3b4c",
        "SELECT COUNT(*) AS n FROM impressions WHERE CAST(:token AS INTEGER) > 0",
        "VARCHAR",
    ),
    "dated": (
        "3a9b4c5d-6e7f-4a8b-9c9d-0e1f2a3b4c5d",
        "SELECT COUNT(*) AS n FROM impressions WHERE impression_date >= :token",
        "DATE",
    ),
}


@pytest.fixture
def collaboration() -> EngineConfig:
    world = example_world()
    templates = world["collaborations"][0]["analysisTemplates"]
    for name, (template_id, sql, kind) in TEMPLATES.items():
        templates.append(
            {
                "name": f"{name}_template",
                "id": template_id,
                "sql": sql,
                "parameters": [{"name": "token", "type": kind}],
            }
        )
    return parse_config(world, source=EXAMPLE)


def spec(name: str, template: str, token: str = SECRET, result_format: str = "CSV") -> str:
    arn = (
        f"arn:aws:cleanrooms:us-east-1:111111111111:membership/{MEMBERSHIP}"
        f"/analysistemplate/{TEMPLATES[template][0]}"
    )
    return (
        f"name: {name}\nmembershipIdentifier: {MEMBERSHIP}\n"
        f"sqlParameters:\n  analysisTemplateArn: {arn}\n  parameters:\n    token: {token}\n"
        "resultConfiguration:\n  outputConfiguration:\n"
        f"    s3: {{resultFormat: {result_format}, bucket: crq-results, keyPrefix: {name}/}}\n"
    )


RUNS = {
    # spec name: (spec text, the notification it must end in)
    "quoted-refusal": (spec("quoted-refusal", "lookup"), "START_FAILED"),
    "succeeds": (spec("succeeds", "lookup"), "QUERY_SUCCEEDED"),
    "retried": (spec("retried", "flaky"), "QUERY_SUCCEEDED"),
    "fails": (spec("fails", "strict"), "QUERY_FAILED"),
    # a non-DATE value for a DATE parameter: preflight refuses it before Clean Rooms sees it
    "refused": (spec("refused", "dated"), "SPEC_REJECTED"),
    "bad-field": (spec("bad-field", "lookup", result_format="XLSX"), "SPEC_REJECTED"),
    "bad-yaml": (spec("bad-yaml", "lookup", token=f"{SECRET}: x: y"), "SPEC_REJECTED"),
    "bad-placeholder": (
        spec("bad-placeholder", "lookup", token=f'"{SECRET} {{{{ nope }}}}"'),
        "SPEC_REJECTED",
    ),
}


def test_a_parameter_value_never_leaves_the_query(
    pipeline_stack: Any,
    functions: Any,
    log_records: Any,
    capfd: pytest.CaptureFixture[str],
    start_faults: StartFaults,
) -> None:
    # Clean Rooms refuses the first start quoting the value back (the engine never does)
    start_faults.fail(
        1,
        400,
        "ValidationException",
        message=f"Invalid parameter value '{SECRET}' for token",
        reason="FIELD_VALIDATION_FAILED",
        fieldList=[{"name": "sqlParameters.parameters.token", "message": f"{SECRET}: invalid"}],
    )
    # Given specs carrying a secret parameter value, each going a different way
    for name, (text, _) in RUNS.items():
        functions.start(pipeline_stack.upload(f"specs/{name}.yaml", text))
    for _ in range(3):  # the retried one fails once, then runs again
        settle(pipeline_stack, functions)
        functions.track(TICK)

    # Then each ended as planned (the test would prove nothing otherwise) ...
    messages = pipeline_stack.notifications(len(RUNS), timeout=2)
    ended = {b["spec"]["name"]: b["event"] for b in bodies(messages)}
    assert ended == {name: event for name, (_, event) in RUNS.items()}
    # ... Clean Rooms did receive the value, and quoted it back in the failed query's error
    received = pipeline_stack.engine.received
    assert received and all(
        r.request["sqlParameters"]["parameters"]["token"] == SECRET for r in received
    )
    failed = next(b for b in bodies(messages) if b["event"] == "QUERY_FAILED")
    quoted = pipeline_stack.engine.handle(
        "GetProtectedQuery",
        {"membershipIdentifier": MEMBERSHIP, "protectedQueryIdentifier": failed["query"]["id"]},
    )
    assert SECRET in quoted["protectedQuery"]["error"]["message"]

    # ... but no log record, printed line, message or ledger item holds it
    captured = capfd.readouterr()
    assert SECRET not in captured.out + captured.err
    assert SECRET not in log_records.text()
    assert all(SECRET not in m["raw"] for m in messages)
    assert SECRET not in json.dumps(pipeline_stack.items(), default=str)
