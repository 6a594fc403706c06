"""`make bench`: crq's performance goals, as ratios measured in this one run.

1. Clean Rooms calls to learn how runs end. Twenty specs are uploaded at once to one
   membership (the queue keeps five running) and the track function ticks until every run is
   notified. crq makes one ListProtectedQueries per membership per tick and a
   GetProtectedQuery only for queries that ended; a naive tracker would Get every running
   query on every tick. Counted from the local engine's own request log.
2. Cold start. A fresh interpreter imports the track handler, builds its collaborators and
   the one client an idle tick needs (DynamoDB; the others are created on first use), against a fresh interpreter that only imports boto3 and creates one Clean Rooms client: what
   crq adds on top of the least any function calling Clean Rooms pays.
3. Preflight. A burst of specs (template parameters, member output) started by the start
   and track functions: Clean Rooms reads preflight makes per started query, amortised by
   its per-container cache, against what it would make uncached.
4. Spec validation. load_spec + render_request of the example spec, against yaml.safe_load of
   the same bytes: the price of the safety checks and the model-driven validation.

Nothing here asserts: the numbers are printed for people (and CI logs) to compare.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
ACCOUNT = "123456789012"
MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"


def _aws_env() -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_CLEANROOMS"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        POWERTOOLS_SERVICE_NAME="crq",
        POWERTOOLS_METRICS_NAMESPACE="crq",
        POWERTOOLS_TRACE_DISABLED="1",
        POWERTOOLS_LOG_LEVEL="WARNING",
        POWERTOOLS_METRICS_DISABLED="1",
    )


class _Context:
    function_name = "crq-bench"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:crq-bench"
    aws_request_id = "00000000-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def track_calls(specs: int = 20) -> dict[str, Any]:
    _aws_env()
    import boto3
    from moto import mock_aws

    from crq_local import stack
    from crq_local.engine import Engine, Timings, load_config
    from crq_local.sandbox.stack_resources import AwsClients, create_stack

    engine = Engine(load_config(ROOT / "examples" / "collaboration.yaml"), timings=Timings.fast())
    calls: Counter[str] = Counter()
    handle = engine.handle

    def counting(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        calls[operation] += 1
        return handle(operation, params)

    engine.handle = counting  # type: ignore[method-assign]
    boto3.DEFAULT_SESSION = None
    try:
        with mock_aws(), engine.installed():
            clients = AwsClients(
                *(
                    boto3.client(name)
                    for name in (
                        "s3",
                        "dynamodb",
                        "sns",
                        "sqs",
                        "events",
                        "scheduler",
                        "cloudwatch",
                    )
                )
            )
            created = create_stack(
                stack.load_template(),
                clients,
                stack_name="crq-bench",
                region=REGION,
                account_id=ACCOUNT,
                parameters={
                    "MembershipIds": [MEMBERSHIP],
                    "ResultBucketNames": ["crq-bench-results"],
                },
            )
            os.environ.update(created.functions["StartFunction"].environment)
            os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"  # the numbers, not the logs
            clients.s3.create_bucket(Bucket="crq-bench-results")
            from handlers import start, track

            bucket = created.buckets["SpecsBucket"]
            template = json.loads((ROOT / "events/start/s3-object-created.json").read_text())
            for i in range(specs):
                body = (
                    f"membershipIdentifier: {MEMBERSHIP}\n"
                    "sqlParameters:\n"
                    "  queryString: |\n"
                    "    -- crq-fault: slow=2s\n"
                    f"    SELECT channel, COUNT(*) AS n, {i} AS spec FROM impressions GROUP BY channel\n"
                    "resultConfiguration:\n"
                    "  outputConfiguration:\n"
                    "    s3: {resultFormat: CSV, bucket: crq-bench-results, keyPrefix: bench}\n"
                )
                key = f"specs/bench-{i:02d}.yaml"
                put = clients.s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
                event = json.loads(json.dumps(template))
                event["detail"]["bucket"]["name"] = bucket
                event["detail"]["object"].update(
                    key=key, size=len(body), etag=put["ETag"].strip('"')
                )
                event["detail"]["object"]["version-id"] = put["VersionId"]
                start.handler(event, _Context())  # type: ignore[arg-type]

            table = created.tables["RunsTable"]
            naive_gets = ticks = 0
            tracking = Counter[str]()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                items = clients.dynamodb.scan(TableName=table)["Items"]
                if all(item.get("notifyState", {}).get("S") == "SENT" for item in items):
                    break
                # A naive tracker Gets every query it knows is running, on every tick.
                naive_gets += sum(1 for item in items if item["state"]["S"] == "RUNNING")
                before = calls.copy()
                track.handler({"source": "crq.track"}, _Context())  # type: ignore[arg-type]
                tracking.update(
                    {
                        op: calls[op] - before[op]
                        for op in ("ListProtectedQueries", "GetProtectedQuery")
                    }
                )
                ticks += 1
                time.sleep(0.2)
            else:
                raise SystemExit("bench: runs did not all end within 120 s")
    finally:
        engine.shutdown()
    crq_calls = sum(tracking.values())
    return {
        "specs": specs,
        "ticks": ticks,
        "starts": calls["StartProtectedQuery"],
        "crq_list": tracking["ListProtectedQueries"],
        "crq_get": tracking["GetProtectedQuery"],
        "naive_get": naive_gets,
        "ratio": naive_gets / crq_calls if crq_calls else float("nan"),
    }


_COLD_CRQ = """
import time; t = time.perf_counter()
import handlers.track
# Clients are created on first use; a tick with nothing in flight needs only DynamoDB's.
handlers.track.pipeline().ledger._client.meta
print(time.perf_counter() - t)
"""
_COLD_BASE = """
import time; t = time.perf_counter()
import boto3
boto3.client("cleanrooms")
print(time.perf_counter() - t)
"""


def cold_start(repeats: int = 5) -> dict[str, float]:
    env = dict(
        os.environ,
        CRQ_TABLE_NAME="t",
        CRQ_TOPIC_ARN=f"arn:aws:sns:{REGION}:{ACCOUNT}:t",
        CRQ_SPECS_BUCKET="b",
        AWS_DEFAULT_REGION=REGION,
        POWERTOOLS_SERVICE_NAME="crq",
        POWERTOOLS_METRICS_NAMESPACE="crq",
        # As in Lambda, where Tracer() loads the X-Ray SDK and patches botocore.
        POWERTOOLS_TRACE_DISABLED="false",
        AWS_LAMBDA_FUNCTION_NAME="crq-bench",
        AWS_LAMBDA_TASK_ROOT=str(ROOT / "src"),
    )

    def once(code: str) -> float:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"bench: cold start run failed:\n{done.stderr}")
        return float(done.stdout)

    def measure(code: str) -> float:
        return statistics.median(once(code) for _ in range(repeats))

    crq, base = measure(_COLD_CRQ), measure(_COLD_BASE)
    return {"crq_ms": crq * 1000, "boto3_ms": base * 1000, "ratio": crq / base}


_FIRST_SPEC = """
import sys, time
import boto3  # the start function has imported it already (its adapters)
from pathlib import Path
from crq.spec import load_spec
data = Path(sys.argv[1]).read_bytes()
t = time.perf_counter()
load_spec(data, sys.argv[1])
print(time.perf_counter() - t)
"""


def spec_validation(repeats: int = 200) -> dict[str, float]:
    import yaml

    from crq.spec import load_spec, render_request

    path = ROOT / "examples" / "specs" / "audience-overlap.yaml"
    data = path.read_bytes()
    run_time = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)

    # The first call after a cold start also loads the Clean Rooms model.
    first = float(
        subprocess.run(
            [sys.executable, "-c", _FIRST_SPEC, str(path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )

    def crq() -> None:
        spec = load_spec(data, str(path))
        render_request(spec, spec.render_context(run_time, "schedule"))

    def plain() -> None:
        yaml.safe_load(data)

    crq_s, plain_s = _per_call(crq, repeats), _per_call(plain, repeats)
    return {
        "first_ms": first * 1000,
        "crq_us": crq_s * 1e6,
        "yaml_us": plain_s * 1e6,
        "ratio": crq_s / plain_s,
    }


def _per_call(fn: Callable[[], None], repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


PREFLIGHT_READS = (
    "GetMembership",
    "GetAnalysisTemplate",
    "GetCollaborationAnalysisTemplate",
    "ListMembers",
)


def preflight_calls(specs: int = 40) -> dict[str, Any]:
    """Clean Rooms reads preflight makes per started query, amortised over a burst.

    `specs` uploads at once (half run an analysis template, half send results to a member, so
    every kind of read is needed), started by the start function and, past the membership's
    five slots, by the track function: two containers, each with its own cache."""
    _aws_env()
    import boto3
    from moto import mock_aws

    from crq_local import stack
    from crq_local.engine import Engine, Timings, load_config
    from crq_local.sandbox.stack_resources import AwsClients, create_stack

    engine = Engine(load_config(ROOT / "examples" / "collaboration.yaml"), timings=Timings.fast())
    calls: Counter[str] = Counter()
    handle = engine.handle

    def counting(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        calls[operation] += 1
        return handle(operation, params)

    engine.handle = counting  # type: ignore[method-assign]
    boto3.DEFAULT_SESSION = None
    template_arn = (
        f"arn:aws:cleanrooms:{REGION}:111111111111:membership/{MEMBERSHIP}"
        "/analysistemplate/3d9a7c15-2e4b-4f68-b0a1-7c5e9d2f1a64"
    )
    try:
        with mock_aws(), engine.installed():
            names = ("s3", "dynamodb", "sns", "sqs", "events", "scheduler", "cloudwatch")
            clients = AwsClients(*(boto3.client(name) for name in names))
            created = create_stack(
                stack.load_template(),
                clients,
                stack_name="crq-bench-preflight",
                region=REGION,
                account_id=ACCOUNT,
                parameters={
                    "MembershipIds": [MEMBERSHIP],
                    "ResultBucketNames": ["crq-bench-results"],
                },
            )
            os.environ.update(created.functions["StartFunction"].environment)
            os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
            clients.s3.create_bucket(Bucket="crq-bench-results")
            from handlers import start, track

            start.pipeline.cache_clear()
            track.pipeline.cache_clear()
            bucket = created.buckets["SpecsBucket"]
            event_template = json.loads((ROOT / "events/start/s3-object-created.json").read_text())
            for i in range(specs):
                if i % 2:
                    body = (
                        f"membershipIdentifier: {MEMBERSHIP}\nsqlParameters:\n"
                        f"  analysisTemplateArn: {template_arn}\n"
                        f"  parameters: {{end_date: '2026-03-{1 + i % 28:02d}'}}\n"
                        "resultConfiguration:\n  outputConfiguration:\n"
                        "    s3: {resultFormat: CSV, bucket: crq-bench-results, keyPrefix: pf}\n"
                    )
                else:
                    body = (
                        f"membershipIdentifier: {MEMBERSHIP}\nsqlParameters:\n"
                        f"  queryString: SELECT channel, {i} AS n FROM impressions\n"
                        "resultConfiguration:\n  outputConfiguration:\n"
                        "    member: {accountId: '222222222222'}\n"
                    )
                key = f"specs/preflight-{i:02d}.yaml"
                put = clients.s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
                event = json.loads(json.dumps(event_template))
                event["detail"]["bucket"]["name"] = bucket
                event["detail"]["object"].update(
                    key=key, size=len(body), etag=put["ETag"].strip('"')
                )
                event["detail"]["object"]["version-id"] = put["VersionId"]
                start.handler(event, _Context())  # type: ignore[arg-type]
            deadline = time.monotonic() + 120
            while calls["StartProtectedQuery"] < specs and time.monotonic() < deadline:
                engine.wait_until_idle(10)
                track.handler({"source": "crq.track"}, _Context())  # type: ignore[arg-type]
            if calls["StartProtectedQuery"] < specs:
                raise SystemExit("bench: the preflight burst did not start every query")
            lookups = sum(
                p.collaboration.lookups
                for p in (start.pipeline(), track.pipeline())
                if p.collaboration is not None
            )
    finally:
        engine.shutdown()
    reads = sum(calls[op] for op in PREFLIGHT_READS)
    starts = calls["StartProtectedQuery"]
    return {
        "specs": specs,
        "starts": starts,
        "reads": reads,
        "by_operation": {op: calls[op] for op in PREFLIGHT_READS if calls[op]},
        "per_start": reads / starts,
        "uncached_per_start": lookups / starts,
    }


def main() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    pre = preflight_calls()
    print(
        f"preflight     {pre['specs']} specs, {pre['starts']} starts: {pre['reads']} Clean Rooms "
        f"reads {pre['by_operation']} -> {pre['per_start']:.2f} per started query, amortised "
        f"(uncached: {pre['uncached_per_start']:.2f}; budget: <= 0.25 per query in a burst)"
    )
    calls = track_calls()
    print(
        f"track calls   {calls['specs']} specs, {calls['starts']} starts, {calls['ticks']} ticks: "
        f"crq {calls['crq_list']} List + {calls['crq_get']} Get vs naive {calls['naive_get']} Get"
        f"  -> naive/crq = {calls['ratio']:.2f}x"
    )
    cold = cold_start()
    print(
        f"cold start    track handler ready for an idle tick {cold['crq_ms']:.0f} ms vs "
        f"boto3 + one client {cold['boto3_ms']:.0f} ms  -> crq/boto3 = {cold['ratio']:.2f}x"
    )
    spec = spec_validation()
    print(
        f"spec checks   load_spec + render {spec['crq_us']:.0f} us vs yaml.safe_load "
        f"{spec['yaml_us']:.0f} us  -> crq/yaml = {spec['ratio']:.2f}x "
        f"(first call after a cold start, loading the Clean Rooms model: {spec['first_ms']:.0f} ms)"
    )


if __name__ == "__main__":
    main()
