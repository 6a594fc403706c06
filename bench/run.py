"""`make bench`: crq's performance goals (issue 10), measured in this one run.

Every figure is a ratio or a count from this run; timings are repeated and printed as
min / median / max so the machine's noise shows. Nothing here asserts, and nothing in
`make test` asserts a time.

1. cold start   the track function as `sam build` builds it (src/Makefile: locked dependencies,
                crq's code, bytecode compiled ahead), run by a python3.13 with only boto3 (as the
                Lambda runtime ships), no .pyc written (read-only task root): import, collaborators
                and the one client an idle tick needs, vs `import boto3` + one client. Built for
                this machine's architecture with the same recipe; the bundle size is the arm64
                artifact's (.aws-sam/build/TrackFunction).
2. AWS calls    one spec, upload to notification, through the real handlers under moto and the
                local engine: every call the functions make, less the tracker's List/Get.
3. track pass   250 runs over 50 memberships, and 2,000 runs over 400, ending in one tick, with
                30 ms per AWS call (in-memory collaborators); then a budget too short for 2,000:
                what is left waits for the next tick.
4. start cost   the per-membership index: rows a start reads with 0 and 1,000 other runs in
                flight in other memberships (DynamoDB under moto).
5. burst        200 specs over 4 memberships, cap 5, queries of d = 2 s, a tick every d/10:
                makespan / ideal (ceil(200/20) x d), in one process: ticks only (the issue's
                set-up), then with the status events handed to the track function too (as
                deployed); and the CPU-seconds the process spent (one GIL is the limit).
                Three alternated runs of each, as min/median/max.
   apart        the same burst with AWS (moto) in a process of its own, as deployed AWS is not in
                the function's process: the functions' and moto's CPU-seconds each.
6. engine       a query through the engine's execution path / the same SQL in DuckDB directly:
                small CSV, 1M-row Parquet, small table beside a 1M-row one.
7. spec checks  load_spec + render, specs/s, and against yaml.safe_load.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account: the stack's ARNs
MEMBERSHIP = "6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10"
ACCOUNT_CALLER = "111111111111"  # the example collaboration's caller


def spread(values: list[float], scale: float = 1.0, unit: str = "", digits: int = 0) -> str:
    lo, mid, hi = min(values), statistics.median(values), max(values)
    return f"{lo * scale:.{digits}f}/{mid * scale:.{digits}f}/{hi * scale:.{digits}f}{unit}"


def line(name: str, text: str) -> None:
    print(f"{name:<13} {text}", flush=True)


# ---------------------------------------------------------------- 1. cold start


_COLD_CRQ = """
import time; t = time.perf_counter()
import handlers.track
# Clients are created on first use; a tick with nothing in flight needs only DynamoDB's.
handlers.track.collaborators().ledger._client.meta
print(time.perf_counter() - t)
"""
_COLD_BASE = """
import time; t = time.perf_counter()
import boto3
boto3.client("cleanrooms")
print(time.perf_counter() - t)
"""


def _size(folder: Path) -> tuple[float, float]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    unpacked = sum(p.stat().st_size for p in files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for p in files:
            archive.write(p, p.relative_to(folder))
    return unpacked / 1e6, len(buffer.getvalue()) / 1e6


def cold_start(repeats: int = 15) -> None:
    built = ROOT / ".aws-sam" / "build" / "TrackFunction"
    if built.is_dir():
        unpacked, zipped = _size(built)
        line(
            "bundle",
            f"TrackFunction as sam build made it: {unpacked:.1f} MB, {zipped:.1f} MB zipped",
        )
    runtime = ROOT / ".venv-runtime" / "bin" / "python"
    if not runtime.exists():
        line("cold start", "skipped: `make runtime-python` makes the runtime's interpreter")
        return
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[
        platform.machine().lower()
    ]
    with tempfile.TemporaryDirectory(prefix="crq-bench-build-") as folder:
        subprocess.run(
            [
                "make",
                "-s",
                "-C",
                str(ROOT / "src"),
                "build-TrackFunction",
                f"ARTIFACTS_DIR={folder}",
                f"PLATFORMS=manylinux_2_28_{arch} manylinux2014_{arch}",
                f"PYTHON={runtime}",
            ],
            check=True,
            capture_output=True,
        )
        env = {
            "PATH": os.environ["PATH"],
            "HOME": folder,
            "PYTHONDONTWRITEBYTECODE": "1",  # Lambda's task root is read-only
            "PYTHONPATH": folder,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": "crq-bench-track",
            "CRQ_TABLE_NAME": "t",
            "CRQ_TOPIC_ARN": f"arn:aws:sns:{REGION}:{ACCOUNT}:t",
            "CRQ_SPECS_BUCKET": "b",
            "POWERTOOLS_SERVICE_NAME": "crq",
            "POWERTOOLS_METRICS_NAMESPACE": "crq",
        }

        def once(code: str) -> float:
            done = subprocess.run(
                [str(runtime), "-c", code], env=env, capture_output=True, text=True, cwd=folder
            )
            if done.returncode:
                raise SystemExit(f"bench: cold start run failed:\n{done.stderr}")
            return float(done.stdout)

        crq: list[float] = []
        base: list[float] = []
        for _ in range(repeats):  # paired, alternated: both see the same noise
            crq.append(once(_COLD_CRQ))
            base.append(once(_COLD_BASE))
    ratios = [c / b for c, b in zip(crq, base, strict=True)]
    line(
        "cold start",
        f"built track function {spread(crq, 1000, ' ms')} vs boto3 + one client "
        f"{spread(base, 1000, ' ms')} (min/median/max of {repeats}) -> "
        f"crq/boto3 = {statistics.median(crq) / statistics.median(base):.2f}x "
        f"(paired ratios {min(ratios):.2f}-{max(ratios):.2f}; goal <= 1.5x)",
    )


# ---------------------------------------------------------------- AWS under moto


class _Context:
    function_name = "crq-bench"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:crq-bench"
    aws_request_id = "00000000-0000-4000-8000-000000000000"

    def __init__(self, seconds: float = 90) -> None:
        self._deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _aws_env() -> None:
    """The process's AWS settings, set once by main() before any thread starts (changing the
    environment while threads run can crash glibc's getenv); the functions' own variables are
    passed to handler_for, never put in os.environ."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_CLEANROOMS"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        POWERTOOLS_SERVICE_NAME="crq",
        POWERTOOLS_METRICS_NAMESPACE="crq",
        POWERTOOLS_LOG_LEVEL="ERROR",  # the numbers, not the logs
        POWERTOOLS_METRICS_DISABLED="1",
    )


def _world(memberships: int) -> Any:
    """The example collaboration, with the caller in `memberships` collaborations."""
    import yaml

    from crq_local.engine.config import parse_config

    source = ROOT / "examples" / "collaboration.yaml"
    world = yaml.safe_load(source.read_text())
    first = next(
        c
        for c in world["collaborations"]
        if any(m["membershipId"] == MEMBERSHIP for m in c["members"])
    )
    world["collaborations"] = [first]  # the caller's own, and copies of it
    for _ in range(memberships - 1):
        other = copy.deepcopy(first)
        other["id"] = str(uuid.uuid4())
        other["name"] = f"bench-{other['id'][:8]}"
        for member in other["members"]:
            member["membershipId"] = str(uuid.uuid4())
        other["analysisTemplates"] = []
        world["collaborations"].append(other)
    config = parse_config(world, source=source)
    ids = [c["members"][0]["membershipId"] for c in world["collaborations"]]
    return config, ids


@contextlib.contextmanager
def _pipeline_stack(memberships: int = 1) -> Iterator[SimpleNamespace]:
    """moto + the local engine + the template's stack; the handlers built from the functions'
    environment (handler_for), and every AWS call they make counted.

    moto runs in this process (`mock_aws`), unless the environment points the AWS services at a
    moto server of their own (`burst_apart`): then only the engine is in-process."""
    import boto3
    from moto import mock_aws

    from crq_local import stack
    from crq_local.engine import Engine, Timings
    from crq_local.engine.inprocess import installed
    from crq_local.sandbox.moto_dynamodb import local_dynamodb
    from crq_local.sandbox.stack_resources import AwsClients, create_stack

    config, ids = _world(memberships)
    engine = Engine(config, timings=Timings.fast())
    boto3.DEFAULT_SESSION = None
    calls: Counter[str] = Counter()
    published: list[float] = []
    calls_lock = threading.Lock()

    def count(model: Any, **_: Any) -> None:
        name = f"{model.service_model.service_name}.{model.name}"
        with calls_lock:
            calls[name] += 1
            if name == "sns.Publish":
                published.append(time.monotonic())

    try:
        apart = bool(os.environ.get(f"AWS_ENDPOINT_URL_{_APART_SERVICES[0]}"))
        aws = contextlib.nullcontext() if apart else mock_aws()
        moto_patches = contextlib.nullcontext() if apart else local_dynamodb()
        with aws, installed(engine), moto_patches:
            setup = boto3.session.Session()  # the bench's own calls are not counted
            clients = AwsClients(
                *(
                    setup.client(name)
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
                # preflight refuses result buckets the stack may not list
                parameters={"MembershipIds": ids, "ResultBucketNames": ["crq-bench-results"]},
            )
            clients.s3.create_bucket(Bucket="crq-bench-results")
            boto3.setup_default_session()
            assert boto3.DEFAULT_SESSION is not None
            boto3.DEFAULT_SESSION.events.register("before-call", count)
            from handlers import start, track

            def environment(logical_id: str) -> dict[str, str]:
                env = dict(created.functions[logical_id].environment)
                env["POWERTOOLS_LOG_LEVEL"] = "ERROR"
                return env

            yield SimpleNamespace(
                engine=engine,
                clients=clients,
                created=created,
                memberships=ids,
                bucket=created.buckets["SpecsBucket"],
                table=created.tables["RunsTable"],
                start=start.handler_for(environment("StartFunction")),
                track=track.handler_for(environment("TrackFunction")),
                # a second track container, for status events (bench: burst)
                track_events=track.handler_for(environment("TrackFunction")),
                calls=calls,
                published=published,
            )
    finally:
        engine.shutdown()


def _spec(i: int, membership: str, seconds: float = 0) -> str:
    slow = f"    -- crq-fault: slow={seconds:g}s\n" if seconds else ""
    return (
        f"membershipIdentifier: {membership}\n"
        "sqlParameters:\n"
        "  queryString: |\n"
        f"{slow}"
        f"    SELECT channel, COUNT(*) AS n, {i} AS spec FROM impressions GROUP BY channel\n"
        "resultConfiguration:\n"
        "  outputConfiguration:\n"
        "    s3: {resultFormat: CSV, bucket: crq-bench-results, keyPrefix: bench}\n"
    )


def _upload_event(env: SimpleNamespace, key: str, body: str) -> dict[str, Any]:
    template = json.loads((ROOT / "events/start/s3-object-created.json").read_text())
    put = env.clients.s3.put_object(Bucket=env.bucket, Key=key, Body=body.encode())
    event = json.loads(json.dumps(template))
    event["detail"]["bucket"]["name"] = env.bucket
    event["detail"]["object"].update(key=key, size=len(body), etag=put["ETag"].strip('"'))
    event["detail"]["object"]["version-id"] = put["VersionId"]
    return event


def _status_event(membership: str, query_id: str) -> dict[str, Any]:
    event = json.loads((ROOT / "events/track/cleanrooms-query-succeeded.json").read_text())
    event["detail"].update(membershipId=membership, protectedQueryId=query_id)
    return event


# ---------------------------------------------------------------- 2. calls per lifecycle

TRACKER_READS = ("cleanrooms.ListProtectedQueries", "cleanrooms.GetProtectedQuery")
# Preflight's reads are cached per container; the preflight section counts them per start.
PREFLIGHT_ONES = (
    "cleanrooms.GetMembership",
    "cleanrooms.GetAnalysisTemplate",
    "cleanrooms.GetCollaborationAnalysisTemplate",
    "cleanrooms.ListMembers",
)


def lifecycle_calls() -> None:
    from crq_local.engine.testing import wait_until_idle

    with _pipeline_stack() as env:
        for path in ("event", "tick"):
            env.calls.clear()
            event = _upload_event(env, f"specs/calls-{path}.yaml", _spec(0, MEMBERSHIP))
            started = time.monotonic()
            result = env.start(event, _Context())
            assert result["outcome"] == "started", result
            assert wait_until_idle(env.engine, 30)
            ended = time.monotonic()
            if path == "event":
                summary = env.track(_status_event(MEMBERSHIP, result["query_id"]), _Context())
            else:
                summary = env.track({"source": "crq.track"}, _Context())
            lag = time.monotonic() - ended
            assert summary["notified"] == 1, summary
            counted = {
                k: v
                for k, v in env.calls.items()
                if k not in TRACKER_READS and k not in PREFLIGHT_ONES
            }
            detail = ", ".join(f"{k.split('.')[1]} {v}" for k, v in sorted(counted.items()))
            line(
                "AWS calls",
                f"upload -> notification via the {path} path: {sum(counted.values())} calls "
                f"besides the tracker's List/Get ({detail}); goal <= 8, was 13",
            )
            if path == "event":
                line(
                    "event lag",
                    f"status event -> notification published: {lag * 1000:.0f} ms in-process "
                    f"(vs the tick period, 60 s by default: {lag / 60:.4f} of a tick); "
                    f"upload -> started {(ended - started):.1f} s incl. the query",
                )


# ---------------------------------------------------------------- 3. one track pass


def track_pass() -> None:
    from latency import (
        Calls,
        EndedQueries,
        NoMetrics,
        NoSpecs,
        SlowLedger,
        SlowPublisher,
        SlowResults,
        later,
        running_run,
    )

    from crq.deadline import Deadline
    from crq.ports import Collaborators
    from crq.settings import Settings
    from crq.tracker import track_in_flight

    def world(runs: int, memberships: int, latency: float, workers: int) -> tuple[Any, Calls]:
        calls = Calls(latency)
        ledger, queries = SlowLedger(calls), EndedQueries(calls)
        members = [str(uuid.UUID(int=i + 1)) for i in range(memberships)]
        for i in range(runs):
            query = queries.add(members[i % memberships])
            ledger.rows[f"run-{i}"] = running_run(f"run-{i}", query)
        settings = Settings(
            table_name="t",
            topic_arn=f"arn:aws:sns:{REGION}:{ACCOUNT}:t",
            specs_bucket="b",
            service_name="crq",
            metrics_namespace="crq",
            track_workers=workers,
        )
        pipeline = Collaborators(
            settings=settings,
            ledger=ledger,
            queries=queries,
            specs=NoSpecs(),
            results=SlowResults(calls),
            publisher=SlowPublisher(calls),
            metrics=NoMetrics(),
            clock=lambda: later(5),
        )
        return pipeline, calls

    latency = 0.030
    timings = {}
    for workers in (16, 1):
        pipeline, calls = world(250, 50, latency, workers)
        began = time.monotonic()
        summary = track_in_flight(pipeline)
        timings[workers] = time.monotonic() - began
        assert summary.ended == 250, summary
    line(
        "track pass",
        f"250 runs over 50 memberships end in one tick, 30 ms per call: {calls.total()} calls; "
        f"{timings[16]:.1f} s with 16 workers vs {timings[1]:.1f} s one call at a time "
        f"({timings[1] / timings[16]:.1f}x faster)",
    )
    pipeline, calls = world(2000, 400, latency, 16)
    began = time.monotonic()
    summary = track_in_flight(pipeline, deadline=Deadline(began + 90 - 15))
    took = time.monotonic() - began
    line(
        "track pass",
        f"2,000 runs over 400 memberships, 30 ms per call: {summary.ended} ended and notified in "
        f"{took:.1f} s ({calls.total()} calls) within the 90 s timeout (budget 75 s); "
        f"deferred {summary.deferred}",
    )
    pipeline, calls = world(2000, 400, latency, 16)
    budget = 5.0
    first = track_in_flight(pipeline, deadline=Deadline(time.monotonic() + budget))
    second = track_in_flight(pipeline)
    line(
        "track pass",
        f"2,000 runs with a {budget:.0f} s budget: {first.ended} ended in the first tick, "
        f"{first.deferred} units deferred; the next tick ended {second.ended}: "
        f"{first.ended + second.ended} of 2,000, none lost",
    )


# ---------------------------------------------------------------- 4. start cost


def start_cost() -> None:
    from crq.adapters.dynamodb import DynamoLedger
    from crq.ledger import Run, RunState, TriggerType

    with _pipeline_stack() as env:
        ledger = DynamoLedger(env.table, env.clients.dynamodb)
        now = datetime.now(UTC)

        def add(i: int, membership: str) -> None:
            ledger.create(
                Run(
                    run_id=f"other-{membership[:4]}-{i}",
                    state=RunState.QUEUED if i % 2 else RunState.RUNNING,
                    created_at=now,
                    updated_at=now,
                    trigger_type=TriggerType.S3,
                    trigger_time=now,
                    spec_bucket="b",
                    spec_key=f"specs/{i}.yaml",
                    spec_name=str(i),
                    membership_id=membership,
                    query_id=None if i % 2 else f"q-{membership[:4]}-{i}",
                )
            )

        for i in range(3):
            add(i, MEMBERSHIP)

        def rows_read() -> tuple[int, float]:
            times = []
            for _ in range(5):
                began = time.perf_counter()
                rows = ledger.active_in_membership(MEMBERSHIP)
                times.append(time.perf_counter() - began)
            return len(rows), statistics.median(times)

        alone, t_alone = rows_read()
        for i in range(1000):
            add(i, str(uuid.UUID(int=i % 40 + 7)))
        crowded, t_crowded = rows_read()
    line(
        "start cost",
        f"a start reads {alone} row(s) of its membership with 0 other runs in flight, "
        f"{crowded} with 1,000 in 40 other memberships ({t_crowded / t_alone:.2f}x the time; "
        "was: every in-flight run, every attribute)",
    )


# ---------------------------------------------------------------- 5. burst


def burst(specs: int = 200, memberships: int = 4, seconds: float = 2.0, repeats: int = 3) -> None:
    """The issue's set-up (ticks only), then as deployed: the status events too, each handed
    to the track function as EventBridge would (a query's end starts its membership's next
    queued run at once). Each `repeats` times, alternated, so the machine's noise shows."""
    from crq.settings import CLEAN_ROOMS_QUERY_CAP

    cap = CLEAN_ROOMS_QUERY_CAP
    tick = seconds / 10
    ideal = math.ceil(specs / (memberships * cap)) * seconds
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for _ in range(repeats):
        for routed in (False, True):
            runs[routed].append(_burst_once(specs, memberships, seconds, tick, routed))
    for routed, figures in runs.items():
        how = "ticks and status events" if routed else "ticks only"
        ratios = [f["makespan"] / ideal for f in figures]
        errors = "".join(f["errors"] for f in figures)
        line(
            "burst",
            f"{specs} specs over {memberships} memberships, cap {cap}, d = {seconds:g} s, tick "
            f"{tick:g} s, {how}: makespan / ideal {ideal:.0f} s = {spread(ratios, 1, 'x', 2)} "
            f"(min/median/max of {repeats}; goal <= 1.3x, was 1.91x); "
            f"{sum(f['notified'] for f in figures)} of {specs * repeats} notified; the starts "
            f"alone took {spread([f['uploaded'] for f in figures], 1, ' s', 1)}; the process "
            f"used {spread([f['cpu'] for f in figures], 1, ' CPU-s', 1)} (one process, one GIL)"
            + errors,
        )
        middle = sorted(figures, key=lambda f: f["makespan"])[len(figures) // 2]
        first, last = middle["first"], middle["last"]
        line(
            "start cost",
            f"start handler over the median burst ({how}): first 20 {first * 1000:.0f} ms, "
            f"last 20 {last * 1000:.0f} ms (median) -> {last / first:.2f}x (was 3.4x)",
        )


# The AWS services of the stack, pointed at a moto server of their own by `burst_apart` (Clean
# Rooms stays the in-process engine: its front door answers only Clean Rooms' own endpoint).
_APART_SERVICES = ("DYNAMODB", "S3", "SNS", "SQS", "EVENTBRIDGE", "SCHEDULER", "CLOUDWATCH")


def burst_apart(specs: int = 200, memberships: int = 4, seconds: float = 2.0) -> None:
    """The burst with AWS where it is when deployed, outside the functions' process: moto in a
    process of its own (with the same DynamoDB patches), the functions and the engine in
    another. On this 2-CPU machine each then has a GIL and most of a core."""
    from crq.settings import CLEAN_ROOMS_QUERY_CAP

    ideal = math.ceil(specs / (memberships * CLEAN_ROOMS_QUERY_CAP)) * seconds
    for routed in (False, True):
        with tempfile.TemporaryDirectory(prefix="crq-bench-moto-") as folder:
            ready = Path(folder) / "url"
            server = subprocess.Popen([sys.executable, __file__, "_moto-server", str(ready)])
            try:
                deadline = time.monotonic() + 60
                while not ready.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                url = ready.read_text()
                env = dict(os.environ) | {f"AWS_ENDPOINT_URL_{s}": url for s in _APART_SERVICES}
                arguments = [str(specs), str(memberships), str(seconds), str(int(routed))]
                child = subprocess.run(
                    [sys.executable, __file__, "_burst-once", *arguments],
                    env=env,
                    capture_output=True,
                    text=True,
                )
                if child.returncode:
                    raise SystemExit(f"bench: burst apart failed:\n{child.stderr[-3000:]}")
                figures = json.loads(child.stdout.strip().splitlines()[-1])
                moto_cpu = _cpu_seconds(server.pid)
            finally:
                server.terminate()
                server.wait()
        how = "ticks and status events" if routed else "ticks only"
        line(
            "burst apart",
            f"the same, AWS (moto) in its own process, {how}: {figures['notified']} notified, "
            f"makespan {figures['makespan']:.1f} s / ideal {ideal:.0f} s = "
            f"{figures['makespan'] / ideal:.2f}x (goal <= 1.3x); starts took "
            f"{figures['uploaded']:.1f} s; CPU-s: functions + engine {figures['cpu']:.1f}, "
            f"moto {moto_cpu:.1f}" + figures["errors"],
        )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _moto_server(ready: str) -> None:
    """moto on a free loopback port until killed; its URL written to `ready`."""
    import logging

    from crq_local.engine.testing import moto_server
    from crq_local.sandbox.moto_dynamodb import local_dynamodb

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request costs CPU too
    with local_dynamodb(), moto_server() as url:
        Path(ready).write_text(url)
        threading.Event().wait()


def _burst_child(specs: str, memberships: str, seconds: str, routed: str) -> None:
    d = float(seconds)
    figures = _burst_once(int(specs), int(memberships), d, d / 10, routed == "1")
    print(json.dumps(figures), flush=True)


def _burst_once(
    specs: int, memberships: int, seconds: float, tick: float, routed: bool
) -> dict[str, Any]:
    # Powertools prints a metric set once it holds 100 values even with metrics disabled (and
    # disabled sets are never cleared): the burst's go to nowhere, not into the figures.
    with _pipeline_stack(memberships) as env, contextlib.redirect_stdout(io.StringIO()):
        stop = threading.Event()
        errors: list[BaseException] = []

        def ticker() -> None:
            while not stop.is_set():
                try:
                    env.track({"source": "crq.track"}, _Context())
                except BaseException as exc:  # reported below
                    errors.append(exc)
                stop.wait(tick)

        route = next(r for r in env.created.routes if r.function == "TrackFunction")
        sqs = env.clients.sqs

        def router() -> None:  # EventBridge -> the track function, one event per invocation
            while not stop.is_set():
                got = sqs.receive_message(QueueUrl=route.queue_url, MaxNumberOfMessages=10)
                for message in got.get("Messages", []):
                    try:
                        env.track_events(json.loads(message["Body"]), _Context())
                    except BaseException as exc:  # reported below
                        errors.append(exc)
                    sqs.delete_message(
                        QueueUrl=route.queue_url, ReceiptHandle=message["ReceiptHandle"]
                    )
                if not got.get("Messages"):
                    stop.wait(0.02)

        events = [
            _upload_event(
                env,
                f"specs/burst-{i:03d}.yaml",
                _spec(i, env.memberships[i % memberships], seconds),
            )
            for i in range(specs)
        ]
        threads = [threading.Thread(target=ticker, daemon=True)]
        if routed:
            threads.append(threading.Thread(target=router, daemon=True))
        start_times: list[float] = []
        cpu = time.process_time()
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for event in events:
            t = time.perf_counter()
            env.start(event, _Context(30))
            start_times.append(time.perf_counter() - t)
        uploaded = time.monotonic() - began
        deadline = began + 300
        while len(env.published) < specs and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu = time.process_time() - cpu
        stop.set()
        for thread in threads:
            thread.join()
        done = max(env.published) if env.published else float("nan")
    return {
        "notified": len(env.published),
        "makespan": done - began,
        "uploaded": uploaded,
        "cpu": cpu,
        "first": statistics.median(start_times[:20]),
        "last": statistics.median(start_times[-20:]),
        "errors": f"; {len(errors)} invocation(s) failed: {errors[0]!r}" if errors else "",
    }


# ---------------------------------------------------------------- 6. engine


def engine_ratios(repeats: int = 9) -> None:
    import duckdb

    from crq_local.engine import Engine, Timings
    from crq_local.engine.config import parse_config
    from crq_local.engine.execution import Execution

    with tempfile.TemporaryDirectory(prefix="crq-bench-engine-") as folder:
        data = Path(folder)
        small = data / "impressions.csv"
        shutil.copy(ROOT / "examples" / "data" / "impressions.csv", small)
        big = data / "events.parquet"
        with duckdb.connect() as con:
            con.execute(
                f"COPY (SELECT range AS id, 'h' || (range % 50000) AS hashed_email, "
                f"range % 97 AS campaign_id, DATE '2026-01-01' + (range % 90)::INT AS day, "
                f"range * 0.01 AS amount FROM range(1000000)) TO '{big}' (FORMAT parquet)"
            )

        def engine_for(tables: list[dict[str, Any]]) -> Any:
            world = json.loads(json.dumps(_world(1)[0].model_dump(mode="json", by_alias=True)))
            world["collaborations"][0]["tables"] = tables
            world["collaborations"][0]["analysisTemplates"] = []
            return Engine(parse_config(world, source=data / "c.yaml"), timings=Timings.fast())

        small_table = {"name": "impressions", "path": str(small)}
        big_table = {"name": "events", "path": str(big)}
        cases = [
            (
                "small CSV",
                [small_table],
                "SELECT channel, COUNT(*) AS n FROM impressions GROUP BY channel",
                {"impressions": f"read_csv('{small}', header = true, auto_detect = true)"},
            ),
            (
                "1M-row Parquet",
                [big_table],
                "SELECT campaign_id, COUNT(*) AS n, SUM(amount) AS total FROM events "
                "GROUP BY campaign_id",
                {"events": f"read_parquet('{big}')"},
            ),
            (
                "small beside 1M",
                [small_table, big_table],
                "SELECT channel, COUNT(*) AS n FROM impressions GROUP BY channel",
                {"impressions": f"read_csv('{small}', header = true, auto_detect = true)"},
            ),
        ]
        for name, tables, sql, views in cases:
            engine = engine_for(tables)
            membership = engine.world.caller_memberships()[0]

            def through_engine(
                engine: Any = engine, membership: Any = membership, sql: str = sql
            ) -> None:
                q = SimpleNamespace(
                    membership=membership,
                    request={"sqlParameters": {"queryString": sql}},
                    receivers=[ACCOUNT_CALLER],
                    bound=SimpleNamespace(sql=sql, values={}),
                    execution=Execution(),
                )
                engine.runner.execute(q)

            def direct(views: dict[str, str] = views, sql: str = sql) -> None:
                with duckdb.connect(":memory:", config={"threads": 2}) as con:
                    for view, reader in views.items():
                        con.execute(f"CREATE VIEW {view} AS SELECT * FROM {reader}")
                    result = con.execute(sql)
                    (getattr(result, "to_arrow_table", None) or result.fetch_arrow_table)()

            through_engine(), direct()  # warm: file caches, the engine's CSV cache
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(repeats):
                ours.append(_timed(through_engine))
                theirs.append(_timed(direct))
            engine.shutdown()
            line(
                "engine",
                f"{name:<16} engine {spread(ours, 1000, ' ms')} vs DuckDB "
                f"{spread(theirs, 1000, ' ms')} -> "
                f"{statistics.median(ours) / statistics.median(theirs):.2f}x (goal <= 1.3x)",
            )


def _timed(fn: Callable[[], None]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


# ---------------------------------------------------------------- 7. spec checks


def spec_checks(repeats: int = 200, rounds: int = 5) -> None:
    import yaml

    from crq.spec import load_spec, render_request

    path = ROOT / "examples" / "specs" / "audience-overlap.yaml"
    data = path.read_bytes()
    run_time = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)

    def crq() -> None:
        spec = load_spec(data, str(path))
        render_request(spec, spec.render_context(run_time, "schedule"))

    def plain() -> None:
        yaml.safe_load(data)

    crq(), plain()
    ours = [_per_call(crq, repeats) for _ in range(rounds)]
    theirs = [_per_call(plain, repeats) for _ in range(rounds)]
    rates = [1 / t for t in ours]
    line(
        "spec checks",
        f"load_spec + render: {spread(rates, 1, ' specs/s')} (min/median/max of {rounds}) vs "
        f"yaml.safe_load alone -> crq/yaml = "
        f"{statistics.median(ours) / statistics.median(theirs):.2f}x",
    )


def _per_call(fn: Callable[[], None], repeats: int) -> float:
    began = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - began) / repeats


# ---------------------------------------------------------------- 8. List/Get per tick (earlier)


def track_calls(specs: int = 20) -> dict[str, Any]:
    """List/Get per tick for `specs` uploads at once, against a naive poller's Gets."""
    with _pipeline_stack() as env:
        for i in range(specs):
            event = _upload_event(env, f"specs/bench-{i:02d}.yaml", _spec(i, MEMBERSHIP, 2))
            env.start(event, _Context())
        naive_gets = ticks = 0
        tracking = Counter[str]()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            items = env.clients.dynamodb.scan(TableName=env.table)["Items"]
            runs = [item for item in items if "state" in item]  # not spec records, name claims
            if all(item.get("notifyState", {}).get("S") == "SENT" for item in runs):
                break
            # A naive tracker Gets every query it knows is running, on every tick.
            naive_gets += sum(1 for item in runs if item["state"]["S"] == "RUNNING")
            before = env.calls.copy()
            env.track({"source": "crq.track"}, _Context())
            tracking.update({op: env.calls[op] - before[op] for op in TRACKER_READS})
            ticks += 1
            time.sleep(0.2)
        else:
            raise SystemExit("bench: runs did not all end within 120 s")
        starts = env.calls["cleanrooms.StartProtectedQuery"]
    crq_calls = sum(tracking.values())
    return {
        "specs": specs,
        "ticks": ticks,
        "starts": starts,
        "crq_list": tracking["cleanrooms.ListProtectedQueries"],
        "crq_get": tracking["cleanrooms.GetProtectedQuery"],
        "naive_get": naive_gets,
        "ratio": naive_gets / crq_calls if crq_calls else float("nan"),
    }


def track_list_get() -> None:
    calls = track_calls()
    line(
        "track calls",
        f"{calls['specs']} specs, {calls['starts']} starts, {calls['ticks']} ticks: "
        f"crq {calls['crq_list']} List + {calls['crq_get']} Get vs naive {calls['naive_get']} Get"
        f"  -> naive/crq = {calls['ratio']:.2f}x",
    )


# ---------------------------------------------------------------- 9. preflight (issue 9)


def preflight_calls(specs: int = 40) -> dict[str, Any]:
    """Clean Rooms reads preflight makes per started query, amortised over a burst.

    `specs` uploads at once (half run an analysis template, half send results to a member, so
    every kind of read is needed), started by the start function and, past the membership's
    five slots, by the track function: two containers, each with its own cache."""
    from crq.preflight import CachedReader
    from crq_local.engine.testing import wait_until_idle

    template_arn = (
        f"arn:aws:cleanrooms:{REGION}:111111111111:membership/{MEMBERSHIP}"
        "/analysistemplate/3d9a7c15-2e4b-4f68-b0a1-7c5e9d2f1a64"
    )
    # Reads asked of the caches (what an uncached preflight would have made), both functions'.
    lookups = Counter[str]()
    lock = threading.Lock()
    cached = CachedReader._cached

    def counting(self: Any, key: Any, read: Any) -> Any:
        with lock:
            lookups["asked"] += 1
        return cached(self, key, read)

    CachedReader._cached = counting  # type: ignore[method-assign]
    try:
        with _pipeline_stack() as env:
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
                env.start(_upload_event(env, f"specs/preflight-{i:02d}.yaml", body), _Context())
            deadline = time.monotonic() + 120
            started = "cleanrooms.StartProtectedQuery"
            while env.calls[started] < specs and time.monotonic() < deadline:
                wait_until_idle(env.engine, 10)
                env.track({"source": "crq.track"}, _Context())
            if env.calls[started] < specs:
                raise SystemExit("bench: the preflight burst did not start every query")
            calls = env.calls.copy()
    finally:
        CachedReader._cached = cached  # type: ignore[method-assign]
    reads = sum(calls[op] for op in PREFLIGHT_ONES)
    starts = calls[started]
    return {
        "specs": specs,
        "starts": starts,
        "reads": reads,
        "by_operation": {op.split(".")[1]: calls[op] for op in PREFLIGHT_ONES if calls[op]},
        "per_start": reads / starts,
        "uncached_per_start": lookups["asked"] / starts,
    }


def preflight_reads() -> None:
    pre = preflight_calls()
    line(
        "preflight",
        f"{pre['specs']} specs, {pre['starts']} starts: {pre['reads']} Clean Rooms "
        f"reads {pre['by_operation']} -> {pre['per_start']:.2f} per started query, amortised "
        f"(uncached: {pre['uncached_per_start']:.2f}; budget: <= 0.25 per query in a burst)",
    )


def main() -> None:
    _aws_env()
    helpers = {"_moto-server": _moto_server, "_burst-once": _burst_child}
    if len(sys.argv) > 1 and sys.argv[1] in helpers:  # burst_apart's own processes
        helpers[sys.argv[1]](*sys.argv[2:])
        return
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    sections = {
        "cold": cold_start,
        "calls": lifecycle_calls,
        "pass": track_pass,
        "start": start_cost,
        "burst": burst,
        "apart": burst_apart,
        "engine": engine_ratios,
        "spec": spec_checks,
        "preflight": preflight_reads,
        "tracklist": track_list_get,
    }
    chosen = sys.argv[1:] or list(sections)
    for name in chosen:
        sections[name]()


if __name__ == "__main__":
    main()
