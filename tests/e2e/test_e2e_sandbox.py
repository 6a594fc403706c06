"""A user's session with `crq sandbox`: upload specs, read notifications, use the CLI, Ctrl-C."""

from __future__ import annotations

import csv
import io
import subprocess

import pyarrow.parquet as pq
import pytest
from e2e_support import CRQ, EXAMPLE_SPECS, SandboxProcess, Subscriber, crq_env

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-sandbox")]


def upload(sandbox: SandboxProcess, key: str, body: bytes) -> None:
    sandbox.client("s3").put_object(Bucket=sandbox.exports["CRQ_SPECS_BUCKET"], Key=key, Body=body)


def read_object(sandbox: SandboxProcess, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body: bytes = sandbox.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def test_the_sandbox_prints_what_a_user_pastes(sandbox: SandboxProcess) -> None:
    exports = sandbox.exports

    assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert exports["AWS_ENDPOINT_URL_CLEANROOMS"].startswith("http://127.0.0.1:")
    assert exports["AWS_ENDPOINT_URL"] != exports["AWS_ENDPOINT_URL_CLEANROOMS"]
    assert {"CRQ_SPECS_BUCKET", "CRQ_TOPIC_ARN", "CRQ_TABLE_NAME"} <= set(exports)
    assert (exports["AWS_ACCESS_KEY_ID"], exports["AWS_DEFAULT_REGION"]) == ("testing", "us-east-1")


def test_uploaded_specs_end_in_the_notifications_a_subscriber_expects(
    sandbox: SandboxProcess, subscriber: Subscriber
) -> None:
    # Given the example specs: CSV, PARQUET, one failing on purpose, one invalid
    names = ["channel-mix", "conversion-by-campaign", "revenue-by-store", "weekly-report-draft"]

    # When a user uploads them to the printed bucket
    for name in names:
        upload(sandbox, f"specs/{name}.yaml", (EXAMPLE_SPECS / f"{name}.yaml").read_bytes())

    # Then the subscriber gets one notification for each, saying how it ended
    got = subscriber.for_keys(*(f"specs/{name}.yaml" for name in names))
    channels = got["specs/channel-mix.yaml"]
    assert (channels.event, channels.status) == ("QUERY_SUCCEEDED", "SUCCESS")
    assert channels.attributes["event"] == "QUERY_SUCCEEDED"
    assert channels.attributes["team"] == "media"  # the spec's notify attributes
    ((result,),) = [channels.objects]
    rows = list(csv.DictReader(io.StringIO(read_object(sandbox, result["uri"]).decode())))
    assert {row["channel"] for row in rows} == {"display", "search", "social", "video"}
    assert len(read_object(sandbox, result["uri"])) == result["size"]

    conversions = got["specs/conversion-by-campaign.yaml"]
    assert conversions.event == "QUERY_SUCCEEDED"
    assert conversions.objects and all(o["uri"].endswith(".parquet") for o in conversions.objects)
    table = pq.read_table(io.BytesIO(read_object(sandbox, conversions.objects[0]["uri"])))
    assert "conversion_rate" in table.column_names and table.num_rows == 4

    failed = got["specs/revenue-by-store.yaml"]
    assert (failed.event, failed.status) == ("QUERY_FAILED", "FAILED")
    assert failed.error is not None and "store_id" in failed.error["message"]
    assert not failed.objects

    rejected = got["specs/weekly-report-draft.yaml"]
    assert rejected.event == "SPEC_REJECTED"
    assert rejected.query_id is None
    assert {e["field"] for e in rejected.errors} == {
        "maxRuntimeMinutes",
        "sqlParameters.queryString",
        "resultConfiguration.outputConfiguration.s3.resultFormat",
    }

    # And the sandbox's own consumer printed them too
    printed = "\n".join(sandbox.stdout)
    for notification in got.values():
        assert f"{notification.event:<16} {notification.spec_name}" in printed


def test_a_lost_status_event_is_caught_by_the_track_schedule(
    sandbox: SandboxProcess, subscriber: Subscriber
) -> None:
    # Given a query whose status events the engine drops (a fault hint in its SQL)
    spec = (EXAMPLE_SPECS / "channel-mix.yaml").read_text()
    spec = spec.replace("name: channel-mix", "name: no-events").replace(
        "SELECT channel,", "-- crq-fault: no-events\n    SELECT channel,"
    )

    # When it is uploaded
    upload(sandbox, "specs/no-events.yaml", spec.encode())

    # Then the scheduled track still notifies how it ended
    (notification,) = subscriber.for_keys("specs/no-events.yaml").values()
    assert notification.event == "QUERY_SUCCEEDED"
    assert notification.objects


def test_status_and_watch_read_the_sandbox(sandbox: SandboxProcess, subscriber: Subscriber) -> None:
    # Copies of two examples under names of their own: a live spec's name is its alone.
    def renamed(example: str, name: str) -> bytes:
        text = (EXAMPLE_SPECS / f"{example}.yaml").read_text()
        return text.replace(f"name: {example}", f"name: {name}").encode()

    upload(sandbox, "specs/watched.yaml", renamed("channel-mix", "watched"))
    upload(sandbox, "specs/watched-fail.yaml", renamed("revenue-by-store", "watched-fail"))
    got = subscriber.for_keys("specs/watched.yaml", "specs/watched-fail.yaml")
    succeeded, failed = got["specs/watched.yaml"], got["specs/watched-fail.yaml"]
    env = crq_env(sandbox.exports)

    status = subprocess.run(
        [CRQ, "status", "--limit", "50"], env=env, capture_output=True, text=True, timeout=60
    )
    watch_ok = subprocess.run(
        [CRQ, "watch", str(succeeded.query_id)], env=env, capture_output=True, text=True, timeout=60
    )
    watch_failed = subprocess.run(
        [CRQ, "watch", str(failed.query_id)], env=env, capture_output=True, text=True, timeout=60
    )

    assert status.returncode == 0, status.stderr
    row = next(line for line in status.stdout.splitlines() if str(succeeded.query_id) in line)
    assert "QUERY_SUCCEEDED" in row and "watched" in row
    assert watch_ok.returncode == 0, watch_ok.stderr
    assert f"SUCCESS  query {succeeded.query_id}" in watch_ok.stdout
    assert "results: s3://" in watch_ok.stdout
    assert watch_failed.returncode == 1
    assert "FAILED" in watch_failed.stdout and "store_id" in watch_failed.stdout


def test_ctrl_c_stops_everything_cleanly(sandbox: SandboxProcess) -> None:
    # Last in this module: it ends the module's sandbox.
    code = sandbox.interrupt()

    assert code == 0, "\n".join(sandbox.stderr)
    assert sandbox.stdout[-1] == "# sandbox stopped"
    assert not [line for line in sandbox.stderr if "Traceback" in line]
