"""What the sandbox prints, read back as a user's shell and the demo read it."""

from __future__ import annotations

import json
import subprocess

from crq_local.sandbox.exports import export_lines, parse_exports
from crq_local.sandbox.notifications import compact_line, parse_sns_message

EXPORTS = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
    "AWS_ENDPOINT_URL_CLEANROOMS": "http://127.0.0.1:4599",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "CRQ_SPECS_BUCKET": "crq-sandbox-specs-bucket",
    "CRQ_TOPIC_ARN": "arn:aws:sns:us-east-1:111111111111:crq-sandbox-notifications-topic",
    "CRQ_TABLE_NAME": "crq-sandbox-runs-table",
    "ODD": "a value with spaces & 'quotes'",
}


def test_export_lines_match_the_readme_shape() -> None:
    lines = export_lines(EXPORTS)

    assert lines[:3] == [
        "export AWS_ENDPOINT_URL=http://127.0.0.1:4566",
        "export AWS_ENDPOINT_URL_CLEANROOMS=http://127.0.0.1:4599",
        "export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1",
    ]
    assert "export CRQ_TABLE_NAME=crq-sandbox-runs-table" in lines


def test_a_posix_shell_reads_the_exports_back() -> None:
    script = "\n".join([*export_lines(EXPORTS), 'printf "%s\\n" "$ODD" "$AWS_DEFAULT_REGION"'])

    shown = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)

    assert shown.stdout.splitlines() == [EXPORTS["ODD"], "us-east-1"]


def test_parse_exports_round_trips_and_ignores_other_lines() -> None:
    printed = ["# crq sandbox: ...", *export_lines(EXPORTS), "QUERY_SUCCEEDED  x  query 1"]

    assert parse_exports(printed) == EXPORTS


def sns_envelope(body: dict, **attributes: str) -> str:
    """An SQS message body as SNS delivers it to a subscribed queue (raw delivery off)."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "m-1",
            "TopicArn": EXPORTS["CRQ_TOPIC_ARN"],
            "Subject": f"crq: {body['spec']['name']} {body['event']}",
            "Message": json.dumps(body),
            "MessageAttributes": {
                name: {"Type": "String", "Value": value} for name, value in attributes.items()
            },
        }
    )


def test_a_succeeded_notification_reads_as_one_line() -> None:
    body = {
        "version": "1",
        "event": "QUERY_SUCCEEDED",
        "spec": {"name": "channel-mix", "source": "s3://specs/specs/channel-mix.yaml"},
        "query": {"id": "q-1", "status": "SUCCESS"},
        "result": {"objects": [{"uri": "s3://results/channel-mix/result.csv", "size": 10}]},
        "statistics": {"totalDurationInMillis": 4200, "billedResourceUtilization": {"units": 0.5}},
    }

    notification = parse_sns_message(sns_envelope(body, event="QUERY_SUCCEEDED", team="media"))

    assert notification.spec_key == "specs/channel-mix.yaml"
    assert notification.attributes == {"event": "QUERY_SUCCEEDED", "team": "media"}
    assert (notification.duration_ms, notification.units) == (4200, 0.5)
    line = compact_line(notification).plain
    assert line.split() == [
        "QUERY_SUCCEEDED",
        "channel-mix",
        "query",
        "q-1",
        "SUCCESS",
        "1",
        "result",
        "file:",
        "s3://results/channel-mix/result.csv",
    ]


def test_failures_and_rejections_say_what_went_wrong() -> None:
    failed = parse_sns_message(
        sns_envelope(
            {
                "event": "QUERY_FAILED",
                "spec": {"name": "r", "source": "s3://b/specs/r.yaml"},
                "query": {"id": "q-2", "status": "FAILED"},
                "error": {"code": "MALFORMED_QUERY", "message": "no column store_id"},
            }
        )
    )
    rejected = parse_sns_message(
        sns_envelope(
            {
                "event": "SPEC_REJECTED",
                "spec": {"name": "d", "source": "s3://b/specs/d.yaml"},
                "errors": [
                    {"field": "maxRuntimeMinutes", "message": "must be at least 1"},
                    {"field": "x", "message": "unknown field"},
                ],
            }
        )
    )

    assert compact_line(failed).plain.endswith("FAILED  MALFORMED_QUERY: no column store_id")
    assert compact_line(rejected).plain.endswith("maxRuntimeMinutes: must be at least 1 (+1 more)")
    assert rejected.query_id is None


def test_a_raw_delivery_message_is_the_body_itself() -> None:
    body = {"event": "QUERY_CANCELLED", "spec": {"name": "n", "source": "s3://b/specs/n.yaml"}}

    notification = parse_sns_message(json.dumps(body))

    assert notification.event == "QUERY_CANCELLED"
    assert notification.subject is None


def test_a_rejection_of_the_whole_file_names_the_file_not_an_empty_field() -> None:
    rejected = parse_sns_message(
        sns_envelope(
            {
                "event": "SPEC_REJECTED",
                "spec": {"name": "e", "source": "s3://b/specs/e.yaml"},
                "errors": [{"field": "", "message": "the file is empty"}],
            }
        )
    )

    line = compact_line(rejected).plain
    assert line.endswith("  the file is empty")
    assert ": the file is empty" not in line
