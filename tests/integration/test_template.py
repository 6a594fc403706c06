"""template.yaml against the contracts it must keep (docs/design.md, issues 3 and 5).

What must not drift: the functions' environment vs `crq.Settings`, handler paths, the
ledger's keys and indexes, least-privilege IAM vs the AWS calls the adapters make, the bucket's
and topic's protections, retries and dead letters on every event source, the event patterns vs
the sample events in events/, and samconfig.toml / src/requirements.txt vs the template and
pyproject.toml. The template is read through `crq_local.stack` (what the sandbox uses), and once
through the real SAM translator to check the IAM roles that would be deployed.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from botocore import xform_name
from botocore.session import get_session
from moto.events.models import EventPattern
from packaging.requirements import Requirement

from crq.adapters import dynamodb
from crq.settings import Settings
from crq_local import stack
from crq_local.stack import Resolver

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"
ADAPTERS = ROOT / "src" / "crq" / "adapters"

STACK = "crq-dev"
REGION = "us-east-1"
ACCOUNT = "111111111111"
MEMBERSHIPS = ["6f4c2a9e-0d1b-4c7e-9a51-2b8f0e3d7a10", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"]
SPECS_BUCKET = "crq-dev-specsbucket-1a2b3c4d5e6f"  # the bucket of events/start/*.json
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/crq-dev-RunsTable-X"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:crq-dev-NotificationsTopic-X"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/4d2e7c1a-0000-4000-8000-000000000000"
DLQ_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:crq-dev-EventsDeadLetterQueue-X"
SCHEDULE_GROUP = "crq-dev-SpecSchedules-X"
SCHEDULE_GROUP_ARN = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/{SCHEDULE_GROUP}"
SCHEDULER_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/crq-dev-SchedulerRole-X"
START_FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-start"
RULE_ARNS = {
    "StartFunctionSpecUploaded": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/crq-dev-spec-uploaded",
    "StartFunctionSpecDeleted": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/crq-dev-spec-deleted",
    "TrackFunctionCleanRoomsStatusChanged": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/crq-dev-cr",
}

# The actions each function's code needs, per docs/design.md and the use cases
# (crq.starter / crq.tracker). Both start queries (track starts queued runs and retries) and
# reconcile lost starts (ByQuery); only track cancels (maxRuntimeMinutes) and lists results.
START_ACTIONS = {
    "s3:GetObject",
    "s3:GetObjectVersion",
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "sns:Publish",
    "cleanrooms:StartProtectedQuery",
    "cleanrooms:GetProtectedQuery",
    "cleanrooms:ListProtectedQueries",
    # preflight (crq.preflight) before each start
    "cleanrooms:GetMembership",
    "cleanrooms:GetAnalysisTemplate",
    "cleanrooms:ListMembers",
    "cleanrooms:GetCollaborationAnalysisTemplate",
}
# Only the start function keeps spec schedules (crq.schedule_sync): in the stack's group, passing
# the one scheduler role, marking spec-state records applied.
SCHEDULE_ACTIONS = {
    "scheduler:CreateSchedule",
    "scheduler:UpdateSchedule",
    "scheduler:DeleteSchedule",
    "scheduler:GetSchedule",
    "iam:PassRole",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",  # an unscheduled upload's record, in its run's transaction
}
SCHEDULE_ENV = {
    "CRQ_SCHEDULE_GROUP",
    "CRQ_SCHEDULER_ROLE_ARN",
    "CRQ_SCHEDULE_TARGET_ARN",
    "CRQ_SCHEDULE_DEAD_LETTER_ARN",
}
EXPECTED_ACTIONS = {
    "StartFunction": START_ACTIONS | SCHEDULE_ACTIONS,
    "TrackFunction": START_ACTIONS
    | {
        "cleanrooms:UpdateProtectedQuery",
        "s3:ListBucket",
        "dynamodb:UpdateItem",
        "dynamodb:BatchGetItem",  # a status event's membership pass reads its runs by key
    },
}
# Calls the adapters make that no function needs: they serve local tools only.
# Calls only tools make: `crq schedules` lists the stack's schedule group; `crq status` queries
# the Recent index, an action the functions have on their own indexes (the grants' resources
# leave Recent out).
TOOLS_ONLY = {"scheduler:ListSchedules": "SchedulerGateway.list, for `crq schedules`"}
# Adapter module -> (botocore service, IAM prefix).
ADAPTER_SERVICES = {
    "cleanrooms.py": ("cleanrooms", "cleanrooms"),
    "dynamodb.py": ("dynamodb", "dynamodb"),
    "s3.py": ("s3", "s3"),
    "sns.py": ("sns", "sns"),
    "scheduler.py": ("scheduler", "scheduler"),
}
# DynamoDB authorises a transaction by the actions inside it; DynamoLedger's hold conditional
# puts (a run and its spec's name claim) and a condition check (the spec-state record).
DYNAMODB_ACTIONS = {"TransactWriteItems": {"dynamodb:PutItem", "dynamodb:ConditionCheckItem"}}
# boto3 operations whose IAM action is not simply prefix:OperationName.
S3_ACTIONS = {
    "GetObject": {"s3:GetObject", "s3:GetObjectVersion"},  # VersionId needs GetObjectVersion
    "HeadObject": {"s3:GetObject", "s3:GetObjectVersion"},
    "ListObjectsV2": {"s3:ListBucket"},
    "ListObjects": {"s3:ListBucket"},
    "ListObjectVersions": {"s3:ListBucketVersions"},
}


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return stack.load_template(TEMPLATE)


def make_resolver(template: dict[str, Any], **parameters: Any) -> Resolver:
    values: dict[str, Any] = {"MembershipIds": MEMBERSHIPS}
    values.update(parameters)
    return Resolver(
        template,
        parameters=values,
        refs={
            "SpecsBucket": SPECS_BUCKET,
            "AccessLogsBucket": "crq-dev-accesslogsbucket-x",
            "RunsTable": TABLE_ARN.rsplit("/", 1)[1],
            "NotificationsTopic": TOPIC_ARN,
            "AlarmsTopic": f"arn:aws:sns:{REGION}:{ACCOUNT}:crq-dev-AlarmsTopic-X",
            "DataKey": KEY_ARN.rsplit("/", 1)[1],
            "EventsDeadLetterQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/dlq",
            "StartFunction": f"{STACK}-start",
            "TrackFunction": f"{STACK}-track",
            "StartFunctionLogGroup": f"/aws/lambda/{STACK}-start",
            "TrackFunctionLogGroup": f"/aws/lambda/{STACK}-track",
            "SpecSchedules": SCHEDULE_GROUP,
        },
        attributes={
            "SpecsBucket.Arn": f"arn:aws:s3:::{SPECS_BUCKET}",
            "AccessLogsBucket.Arn": "arn:aws:s3:::crq-dev-accesslogsbucket-x",
            "RunsTable.Arn": TABLE_ARN,
            "DataKey.Arn": KEY_ARN,
            "EventsDeadLetterQueue.Arn": DLQ_ARN,
            "EventsDeadLetterQueue.QueueName": "crq-dev-EventsDeadLetterQueue-X",
            "SpecSchedules.Arn": SCHEDULE_GROUP_ARN,
            "SchedulerRole.Arn": SCHEDULER_ROLE_ARN,
            **{f"{rule}.Arn": arn for rule, arn in RULE_ARNS.items()},
        },
        stack_name=STACK,
        region=REGION,
        account_id=ACCOUNT,
    )


def function_statements(resolver: Resolver, function: str) -> list[dict[str, Any]]:
    policies = resolver.resolve(stack.function_property(resolver.template, function, "Policies"))
    return stack.statements(policies)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted(statements: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Action -> every resource it is allowed on."""
    found: dict[str, set[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow", statement
        assert "NotAction" not in statement and "NotResource" not in statement, statement
        for action in as_list(statement["Action"]):
            found.setdefault(action, set()).update(as_list(statement["Resource"]))
    return found


def load_event(relative: str) -> dict[str, Any]:
    return json.loads((EVENTS / relative).read_text())


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    return EventPattern.load(json.dumps(pattern)).matches_event(event)  # type: ignore[arg-type]


def rule(template: dict[str, Any], function: str, name: str) -> stack.EventRule:
    (found,) = [r for r in stack.event_rules(template) if (r.function, r.name) == (function, name)]
    return found


def sam_translate(template: dict[str, Any], **parameters: str) -> dict[str, Any]:
    """The CloudFormation SAM would deploy, translated offline (no AWS calls)."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:  # the template names no managed policies to look up
        def load(self) -> dict[str, str]:
            return {}

    fragment = copy.deepcopy(template)
    fragment["Globals"]["Function"]["CodeUri"] = "s3://bucket/crq.zip"  # as after `sam package`
    values = {"MembershipIds": ",".join(MEMBERSHIPS), **parameters}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", REGION)  # the translator derives the partition from it
        return transform(fragment, values, NoManagedPolicies())  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    return sam_translate(template)


# ---------------------------------------------------------------- the loader itself


def test_loader_turns_short_forms_into_long_forms(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "Resources:\n"
        "  A:\n"
        "    Type: X\n"
        "    Properties:\n"
        "      Ref: !Ref B\n"
        "      Att: !GetAtt B.Arn\n"
        "      Sub: !Sub '${B}-${!Literal}'\n"
        "      If: !If [C, !Ref AWS::NoValue, [1, !Ref AWS::NoValue]]\n"
        "Conditions:\n"
        "  C: !Equals [!Ref P, 'no']\n"
        "Parameters:\n"
        "  P: {Type: String, Default: 'yes'}\n"
    )
    template = stack.load_template(path)
    properties = template["Resources"]["A"]["Properties"]
    assert properties["Ref"] == {"Ref": "B"}
    assert properties["Att"] == {"Fn::GetAtt": ["B", "Arn"]}

    resolver = Resolver(template, refs={"B": "b"}, attributes={"B.Arn": "arn:b"})
    assert resolver.resolve(properties) == {
        "Ref": "b",
        "Att": "arn:b",
        "Sub": "b-${Literal}",
        "If": [1],
    }
    with pytest.raises(stack.UnresolvedReference, match="Ref Missing"):
        resolver.resolve({"Ref": "Missing"})


def test_resolver_demands_parameters_without_default(template: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="MembershipIds"):
        Resolver(template)
    with pytest.raises(KeyError, match="NoSuchParameter"):
        make_resolver(template, NoSuchParameter="x")


# ---------------------------------------------------------------- functions


def test_globals_pin_runtime_architecture_tracing_and_powertools(template: dict[str, Any]) -> None:
    resolver = make_resolver(template, LogLevel="WARNING")
    for function in ("StartFunction", "TrackFunction"):
        assert stack.function_property(template, function, "Runtime") == "python3.13"
        assert stack.function_property(template, function, "Architectures") == ["arm64"]
        assert stack.function_property(template, function, "Tracing") == "Active"
        assert stack.function_property(template, function, "CodeUri") == "src/"
        env = resolver.environment(function)
        assert env["POWERTOOLS_SERVICE_NAME"] == "crq"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "crq"
        assert env["POWERTOOLS_LOG_LEVEL"] == "WARNING"
    assert stack.function_ids(template) == ["StartFunction", "TrackFunction"]
    assert stack.function_handler(template, "StartFunction") == "handlers.start.handler"
    assert stack.function_handler(template, "TrackFunction") == "handlers.track.handler"


def test_each_function_gets_exactly_the_settings_environment(template: dict[str, Any]) -> None:
    expected = set(Settings.env_names().values())
    assert set(stack.function_environment(template, "StartFunction")) == expected
    assert set(stack.function_environment(template, "TrackFunction")) == expected - SCHEDULE_ENV


def test_the_start_function_keeps_schedules_in_the_stacks_group(template: dict[str, Any]) -> None:
    loaded = Settings.from_env(make_resolver(template).environment("StartFunction"))
    assert loaded.schedule_group == SCHEDULE_GROUP
    assert loaded.scheduler_role_arn == SCHEDULER_ROLE_ARN
    assert loaded.schedule_target_arn == START_FUNCTION_ARN
    assert loaded.schedule_dead_letter_arn == DLQ_ARN
    assert loaded.min_schedule_interval_minutes == 60
    assert template["Resources"]["SpecSchedules"]["Type"] == "AWS::Scheduler::ScheduleGroup"
    tight = make_resolver(template, MinScheduleIntervalMinutes="1440")
    for function in ("StartFunction", "TrackFunction"):  # both load specs
        assert Settings.from_env(tight.environment(function)).min_schedule_interval_minutes == 1440


def test_template_environment_is_valid_settings(template: dict[str, Any]) -> None:
    resolver = make_resolver(
        template, DefaultMaxRuntimeMinutes="45", RunRetentionDays="30", MembershipQueryCap="3"
    )
    for function in ("StartFunction", "TrackFunction"):
        loaded = Settings.from_env(resolver.environment(function))
        assert loaded.table_name == "crq-dev-RunsTable-X"
        assert loaded.topic_arn == TOPIC_ARN
        assert loaded.specs_bucket == SPECS_BUCKET
        assert loaded.specs_prefix == "specs/"
        assert loaded.default_max_runtime_minutes == 45
        assert loaded.run_retention_days == 30
        assert loaded.membership_query_cap == 3


def test_parameter_ranges_are_ones_settings_accept(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    for parameter in (
        "DefaultMaxRuntimeMinutes",
        "RunRetentionDays",
        "MembershipQueryCap",
        "MinScheduleIntervalMinutes",
    ):
        for bound in ("MinValue", "MaxValue", "Default"):
            resolver = make_resolver(template, **{parameter: parameters[parameter][bound]})
            # Raises ConfigError if the template would let a deploy break the cold start.
            Settings.from_env(resolver.environment("StartFunction"))


def test_function_timeouts_stay_below_the_starting_grace(template: dict[str, Any]) -> None:
    grace = Settings.model_fields["starting_grace"].default.total_seconds()
    for function in ("StartFunction", "TrackFunction"):
        assert stack.function_property(template, function, "Timeout") < grace, function


def test_handlers_import_as_callables_with_the_template_environment(
    template: dict[str, Any],
) -> None:
    # A fresh interpreter, as a cold start: the handler modules import with exactly the
    # template's environment (plus what Lambda sets), and their handler is callable.
    for function in ("StartFunction", "TrackFunction"):
        module, _, attribute = stack.function_handler(template, function).rpartition(".")
        env = {
            **make_resolver(template).environment(function),
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT / "src"),
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": f"{STACK}-{function}",
        }
        code = (
            "import importlib, sys\n"
            f"handler = getattr(importlib.import_module({module!r}), {attribute!r})\n"
            "sys.exit(0 if callable(handler) else 3)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{function}: {done.stderr[-2000:]}"


def test_functions_log_to_their_own_log_group_with_retention(template: dict[str, Any]) -> None:
    resolver = make_resolver(template, LogRetentionDays="14")
    key_policy = resolver.resolve(template["Resources"]["DataKey"]["Properties"]["KeyPolicy"])
    (logs_statement,) = [
        s for s in key_policy["Statement"] if s["Principal"].get("Service", "").startswith("logs.")
    ]
    logs_arn_pattern = logs_statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    for function in ("StartFunction", "TrackFunction"):
        name = resolver.resolve(stack.function_property(template, function, "FunctionName"))
        log_ref = stack.function_property(template, function, "LoggingConfig")["LogGroup"]
        log_group = template["Resources"][log_ref["Ref"]]
        assert log_group["Type"] == "AWS::Logs::LogGroup"
        properties = resolver.resolve(log_group["Properties"])
        assert properties["LogGroupName"] == f"/aws/lambda/{name}"
        assert properties["RetentionInDays"] == "14"
        assert properties["KmsKeyId"] == KEY_ARN
        # The key lets CloudWatch Logs use it for exactly these log groups.
        group_arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{properties['LogGroupName']}"
        assert fnmatch.fnmatchcase(group_arn, logs_arn_pattern)


# ---------------------------------------------------------------- the ledger


def test_runs_table_matches_design(template: dict[str, Any]) -> None:
    definition = stack.table_definition(template)
    assert definition["BillingMode"] == "PAY_PER_REQUEST"
    assert definition["KeySchema"] == [{"AttributeName": "runId", "KeyType": "HASH"}]
    attributes = {
        a["AttributeName"]: a["AttributeType"] for a in definition["AttributeDefinitions"]
    }
    assert attributes == {
        "runId": "S",
        "inFlight": "S",
        "inFlightSince": "S",
        "queryId": "S",
        "inFlightMembership": "S",
        "recentYear": "S",
        "recentSince": "S",
    }
    indexes = {index["IndexName"]: index for index in definition["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"InFlight", "InFlightByMembership", "ByQuery", "Recent"}
    assert indexes["Recent"]["KeySchema"] == [
        {"AttributeName": "recentYear", "KeyType": "HASH"},
        {"AttributeName": "recentSince", "KeyType": "RANGE"},
    ]
    assert indexes["InFlight"]["KeySchema"] == [
        {"AttributeName": "inFlight", "KeyType": "HASH"},
        {"AttributeName": "inFlightSince", "KeyType": "RANGE"},
    ]
    # Per membership, narrow: a start reads its own membership's keys and states only.
    assert indexes["InFlightByMembership"]["KeySchema"] == [
        {"AttributeName": "inFlightMembership", "KeyType": "HASH"},
        {"AttributeName": "inFlightSince", "KeyType": "RANGE"},
    ]
    assert indexes["InFlightByMembership"]["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["state"],
    }
    assert indexes["ByQuery"]["KeySchema"] == [{"AttributeName": "queryId", "KeyType": "HASH"}]
    assert stack.table_ttl_attribute(template) == "expiresAt"

    properties = template["Resources"]["RunsTable"]["Properties"]
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert make_resolver(template, Environment="prod").resolve(
        properties["DeletionProtectionEnabled"]
    )
    assert not make_resolver(template, Environment="dev").resolve(
        properties["DeletionProtectionEnabled"]
    )


def test_ledger_adapter_uses_the_template_index_names(template: dict[str, Any]) -> None:
    indexes = {i["IndexName"] for i in stack.table_definition(template)["GlobalSecondaryIndexes"]}
    assert {
        dynamodb.IN_FLIGHT_INDEX,
        dynamodb.IN_FLIGHT_BY_MEMBERSHIP_INDEX,
        dynamodb.BY_QUERY_INDEX,
        dynamodb.RECENT_INDEX,
    } == indexes


# ---------------------------------------------------------------- least privilege


def test_each_function_may_do_only_what_its_code_needs(template: dict[str, Any]) -> None:
    resolver = make_resolver(template, ResultBucketNames="results-a,results-b")
    for function, expected in EXPECTED_ACTIONS.items():
        assert set(granted(function_statements(resolver, function))) == expected, function


def test_each_action_is_granted_only_on_this_stacks_resources(template: dict[str, Any]) -> None:
    resolver = make_resolver(template, ResultBucketNames="results-a,results-b")
    memberships = {f"arn:*:cleanrooms:*:*:membership/{m}" for m in MEMBERSHIPS} | {
        f"arn:*:cleanrooms:*:*:membership/{m}/*" for m in MEMBERSHIPS
    }
    allowed_resources = {
        "s3:GetObject": {f"arn:aws:s3:::{SPECS_BUCKET}/specs/*"},
        "s3:GetObjectVersion": {f"arn:aws:s3:::{SPECS_BUCKET}/specs/*"},
        "s3:ListBucket": {"arn:*:s3:::results-a", "arn:*:s3:::results-b"},
        "kms:Decrypt": {KEY_ARN},
        "kms:GenerateDataKey": {KEY_ARN},
        "dynamodb:GetItem": {TABLE_ARN},
        "dynamodb:BatchGetItem": {TABLE_ARN},
        "dynamodb:PutItem": {TABLE_ARN},
        "dynamodb:UpdateItem": {TABLE_ARN},
        "dynamodb:ConditionCheckItem": {TABLE_ARN},
        "scheduler:CreateSchedule": {
            f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{SCHEDULE_GROUP}/*"
        },
        "scheduler:UpdateSchedule": {
            f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{SCHEDULE_GROUP}/*"
        },
        "scheduler:DeleteSchedule": {
            f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{SCHEDULE_GROUP}/*"
        },
        "scheduler:GetSchedule": {
            f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{SCHEDULE_GROUP}/*"
        },
        "iam:PassRole": {SCHEDULER_ROLE_ARN},
        "dynamodb:Query": {
            f"{TABLE_ARN}/index/InFlight",
            f"{TABLE_ARN}/index/InFlightByMembership",
            f"{TABLE_ARN}/index/ByQuery",
        },
        "sns:Publish": {TOPIC_ARN},
        "cleanrooms:StartProtectedQuery": memberships,
        "cleanrooms:GetProtectedQuery": memberships,
        "cleanrooms:ListProtectedQueries": memberships,
        "cleanrooms:UpdateProtectedQuery": memberships,
        "cleanrooms:GetMembership": memberships,
        "cleanrooms:GetAnalysisTemplate": memberships,
        # a collaboration's ARN names its creator's account: any collaboration in the region
        "cleanrooms:ListMembers": {f"arn:aws:cleanrooms:{REGION}:*:collaboration/*"},
        "cleanrooms:GetCollaborationAnalysisTemplate": {
            f"arn:aws:cleanrooms:{REGION}:*:collaboration/*"
        },
    }
    for function in EXPECTED_ACTIONS:
        statements = function_statements(resolver, function)
        for action, resources in granted(statements).items():
            assert resources == allowed_resources[action], (function, action)
        for statement in statements:
            if any(a.startswith("kms:") for a in as_list(statement["Action"])):
                via = statement["Condition"]["StringEquals"]["kms:ViaService"]
                assert set(via) == {f"s3.{REGION}.amazonaws.com", f"sns.{REGION}.amazonaws.com"}
            if "iam:PassRole" in as_list(statement["Action"]):
                passed = statement["Condition"]["StringEquals"]["iam:PassedToService"]
                assert passed == "scheduler.amazonaws.com"


def test_the_specs_prefix_is_the_same_everywhere(template: dict[str, Any]) -> None:
    resolver = make_resolver(template)
    prefix = resolver.environment("StartFunction")["CRQ_SPECS_PREFIX"]
    bucket_arn = f"arn:aws:s3:::{SPECS_BUCKET}"
    for function in EXPECTED_ACTIONS:
        reads = granted(function_statements(resolver, function))["s3:GetObject"]
        assert reads == {f"{bucket_arn}/{prefix}*"}, function
    pattern = resolver.event_pattern(rule(template, "StartFunction", "SpecUploaded"))
    keys = pattern["detail"]["object"]["key"]
    assert keys == [{"prefix": prefix}]
    name, example = stack.schedule_example(TEMPLATE)
    assert json.loads(example["Properties"]["Input"])["specKey"].startswith(prefix), name
    assert resolver.resolve(template["Outputs"]["SpecsUploadUri"]["Value"]).endswith(f"/{prefix}")


SPEC_KEYS_ANY_CASE = ["x.yaml", "x.YAML", "team-a/x.Yml", "x.yml", "x.json", "deep/er/x.JSON"]


@pytest.mark.parametrize("name", SPEC_KEYS_ANY_CASE)
def test_every_spec_name_validate_accepts_reaches_the_start_function(
    template: dict[str, Any], name: str
) -> None:
    from moto.events.models import EventPattern

    from crq.spec.safe_load import format_of

    resolver = make_resolver(template)
    prefix = resolver.environment("StartFunction")["CRQ_SPECS_PREFIX"]
    pattern = EventPattern.load(
        json.dumps(resolver.event_pattern(rule(template, "StartFunction", "SpecUploaded")))
    )
    event = json.loads((ROOT / "events" / "start" / "s3-object-created.json").read_text())
    event["detail"]["bucket"]["name"] = SPECS_BUCKET

    def delivered(key: str) -> bool:
        event["detail"]["object"]["key"] = key
        return bool(pattern.matches_event(event))

    # `crq validate` accepts the name (any case), so an upload of it must reach the function
    assert format_of(name) is not None
    assert delivered(f"{prefix}{name}")
    # and nothing outside the prefix does
    assert not delivered(f"elsewhere/{name}")


def test_clean_rooms_grants_cover_the_listed_memberships_only(template: dict[str, Any]) -> None:
    resolver = make_resolver(template)
    resources = granted(function_statements(resolver, "TrackFunction"))[
        "cleanrooms:StartProtectedQuery"
    ]
    ours, theirs = MEMBERSHIPS[0], "99999999-8888-4777-8666-555555555555"
    prefix = f"arn:aws:cleanrooms:{REGION}:{ACCOUNT}:membership"

    def allowed(arn: str) -> bool:
        return any(fnmatch.fnmatchcase(arn, pattern) for pattern in resources)

    assert allowed(f"{prefix}/{ours}")
    assert allowed(f"{prefix}/{ours}/analysistemplate/{theirs}")
    assert allowed(f"{prefix}/{MEMBERSHIPS[1]}/configuredtableassociation/{theirs}")
    assert not allowed(f"{prefix}/{theirs}")
    assert not allowed(f"{prefix}/{theirs}/analysistemplate/{ours}")
    assert not allowed(f"arn:aws:cleanrooms:{REGION}:{ACCOUNT}:collaboration/{ours}")


def test_optional_grants_appear_only_when_configured(template: dict[str, Any]) -> None:
    template_arn = (
        f"arn:aws:cleanrooms:{REGION}:222222222222:membership/"
        f"{MEMBERSHIPS[1]}/analysistemplate/{MEMBERSHIPS[0]}"
    )
    bare = make_resolver(template)
    assert "s3:ListBucket" not in granted(function_statements(bare, "TrackFunction"))
    configured = make_resolver(template, AnalysisTemplateArns=template_arn)
    for function in EXPECTED_ACTIONS:
        before = granted(function_statements(bare, function))["cleanrooms:StartProtectedQuery"]
        after = granted(function_statements(configured, function))["cleanrooms:StartProtectedQuery"]
        assert after - before == {template_arn}, function


def adapter_actions() -> dict[str, set[str]]:
    """IAM action -> adapter files calling it, from the boto3 operations the adapters name."""
    session = get_session()
    found: dict[str, set[str]] = {}
    for filename, (service, prefix) in ADAPTER_SERVICES.items():
        path = ADAPTERS / filename
        operations = {
            xform_name(op): op for op in session.get_service_model(service).operation_names
        }
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)  # get_paginator("list_objects_v2")
        for name in names & set(operations):
            operation = operations[name]
            actions = S3_ACTIONS.get(operation) if prefix == "s3" else None
            actions = DYNAMODB_ACTIONS.get(operation, actions) if prefix == "dynamodb" else actions
            if prefix == "s3" and actions is None:
                pytest.fail(f"{filename} calls {operation}: add its IAM actions to S3_ACTIONS")
            for action in actions or {f"{prefix}:{operation}"}:
                found.setdefault(action, set()).add(filename)
    return found


def test_iam_grants_match_the_aws_calls_the_adapters_make(template: dict[str, Any]) -> None:
    used = adapter_actions()
    resolver = make_resolver(template, ResultBucketNames="results-a")
    grants: set[str] = set()
    for function in EXPECTED_ACTIONS:
        grants |= set(granted(function_statements(resolver, function)))

    for action, reason in TOOLS_ONLY.items():
        assert action in used, f"{action} is no longer called ({reason}): drop it from TOOLS_ONLY"
        used.pop(action)
    missing = {action: sorted(files) for action, files in used.items() if action not in grants}
    assert not missing, f"the adapters call these but no function may: {missing}"
    checked = {prefix for _, prefix in ADAPTER_SERVICES.values()}
    unused = {a for a in grants if a.split(":")[0] in checked and a not in used}
    assert not unused, f"granted but no adapter calls them: {sorted(unused)}"


def test_tools_only_calls_are_not_reachable_from_the_functions() -> None:
    # DynamoLedger.recent reads the Recent index, which the functions may not query.
    sources = [*(ROOT / "src" / "crq").glob("*.py"), *(ROOT / "src" / "handlers").glob("*.py")]
    callers = [
        p.name for p in sources if ".recent(" in p.read_text() or "iter_recent(" in p.read_text()
    ]
    assert not callers, f"{callers} call DynamoLedger.recent, which queries the Recent index"


def test_no_code_scans_the_runs_table() -> None:
    # A year of retention makes a scan slow and costly: tools read through an index.
    sources = [*(ROOT / "src").rglob("*.py"), *(ROOT / "local").rglob("*.py")]
    scanners = [str(p.relative_to(ROOT)) for p in sources if ".scan(" in p.read_text()]
    assert not scanners, f"{scanners} scan a table"


def test_deployed_roles_hold_only_these_policies(translated: dict[str, Any]) -> None:
    resources = translated["Resources"]
    roles = {k: v for k, v in resources.items() if v["Type"] == "AWS::IAM::Role"}
    assert set(roles) == {
        "StartFunctionRole",
        "TrackFunctionRole",
        "TrackFunctionTrackScheduleRole",
        "SchedulerRole",
    }
    for function, expected in EXPECTED_ACTIONS.items():
        properties = roles[f"{function}Role"]["Properties"]
        assert sorted(properties["ManagedPolicyArns"]) == [
            "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
            "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        ]
        actions: set[str] = set()
        for policy in properties["Policies"]:
            for statement in as_list(policy["PolicyDocument"]["Statement"]):
                if "Fn::If" in statement:  # optional grants, covered above
                    statement = statement["Fn::If"][1]
                actions.update(as_list(statement["Action"]))
        # SAM adds sqs:SendMessage on the dead-letter queue for the OnFailure destination.
        assert actions == expected | {"sqs:SendMessage"}, function
    schedule_role = roles["TrackFunctionTrackScheduleRole"]["Properties"]
    schedule_actions = {
        action
        for policy in schedule_role["Policies"]
        for statement in as_list(policy["PolicyDocument"]["Statement"])
        for action in as_list(statement["Action"])
    }
    assert schedule_actions == {"lambda:InvokeFunction", "sqs:SendMessage"}


def test_spec_schedules_may_only_invoke_the_start_function(template: dict[str, Any]) -> None:
    role = make_resolver(template).resolve(template["Resources"]["SchedulerRole"]["Properties"])
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert trust["Condition"]["ArnEquals"] == {"aws:SourceArn": SCHEDULE_GROUP_ARN}
    grants = granted(stack.statements(p["PolicyDocument"] for p in role["Policies"]))
    assert grants == {"lambda:InvokeFunction": {START_FUNCTION_ARN}, "sqs:SendMessage": {DLQ_ARN}}
    # The start function passes exactly this role, and its schedules target the function.
    loaded = Settings.from_env(make_resolver(template).environment("StartFunction"))
    assert loaded.scheduler_role_arn == SCHEDULER_ROLE_ARN
    assert loaded.schedule_target_arn == START_FUNCTION_ARN


# ---------------------------------------------------------------- bucket and topics


def test_specs_bucket_is_versioned_encrypted_private_tls_only_and_tells_eventbridge(
    template: dict[str, Any],
) -> None:
    resolver = make_resolver(template)
    bucket = template["Resources"]["SpecsBucket"]
    properties = resolver.resolve(bucket["Properties"])
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": KEY_ARN,
    }
    assert properties["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(properties["PublicAccessBlockConfiguration"]) == 4
    assert properties["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert (
        properties["LoggingConfiguration"]["DestinationBucketName"] == "crq-dev-accesslogsbucket-x"
    )
    assert bucket["DeletionPolicy"] == "Retain"
    assert_tls_only(resolver, "SpecsBucketPolicy", f"arn:aws:s3:::{SPECS_BUCKET}")


def assert_tls_only(resolver: Resolver, policy_id: str, arn: str) -> None:
    resource = resolver.template["Resources"][policy_id]
    statements = resolver.resolve(resource["Properties"]["PolicyDocument"])["Statement"]
    (deny,) = [s for s in statements if s.get("Sid") == "DenyInsecureTransport"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert arn in as_list(deny["Resource"])
    assert as_list(deny["Action"])[0].endswith(("*", "Publish"))


def test_spec_writers_can_be_restricted(template: dict[str, Any]) -> None:
    def policy(**parameters: Any) -> list[dict[str, Any]]:
        resolver = make_resolver(template, **parameters)
        document = template["Resources"]["SpecsBucketPolicy"]["Properties"]["PolicyDocument"]
        return resolver.resolve(document)["Statement"]

    assert [s["Sid"] for s in policy()] == ["DenyInsecureTransport"]
    writers = "arn:aws:iam::111111111111:role/spec-writers,arn:aws:iam::111111111111:role/ci-*"
    (restriction,) = [
        s for s in policy(SpecWriterArns=writers) if s["Sid"] != "DenyInsecureTransport"
    ]
    assert restriction["Effect"] == "Deny"
    assert restriction["Action"] == "s3:PutObject"
    assert restriction["Resource"] == f"arn:aws:s3:::{SPECS_BUCKET}/specs/*"
    assert restriction["Condition"] == {"StringNotLike": {"aws:PrincipalArn": writers.split(",")}}


def test_topics_are_encrypted_and_tls_only(template: dict[str, Any]) -> None:
    resolver = make_resolver(template)
    for topic, policy in (
        ("NotificationsTopic", "NotificationsTopicPolicy"),
        ("AlarmsTopic", "AlarmsTopicPolicy"),
    ):
        properties = template["Resources"][topic]["Properties"]
        assert properties["KmsMasterKeyId"] == {"Ref": "DataKey"}
        assert resolver.resolve(template["Resources"][policy]["Properties"]["Topics"]) == [
            resolver.resolve({"Ref": topic})
        ]
        assert_tls_only(resolver, policy, resolver.resolve({"Ref": topic}))
    # The key lets CloudWatch alarms publish to the encrypted alarms topic.
    key_policy = template["Resources"]["DataKey"]["Properties"]["KeyPolicy"]["Statement"]
    assert any(s["Principal"].get("Service") == "cloudwatch.amazonaws.com" for s in key_policy)


def test_email_subscriptions_exist_only_with_an_address(template: dict[str, Any]) -> None:
    subscriptions = stack.resources(template, "AWS::SNS::Subscription")
    assert {s["Properties"]["TopicArn"]["Ref"] for s in subscriptions.values()} == {
        "NotificationsTopic",
        "AlarmsTopic",
    }
    assert {s["Condition"] for s in subscriptions.values()} == {"HasNotificationEmail"}
    assert not make_resolver(template).condition("HasNotificationEmail")
    assert make_resolver(template, NotificationEmail="data@example.com").condition(
        "HasNotificationEmail"
    )


# ---------------------------------------------------------------- failure paths


def every_event(template: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    events = [
        (function, name, event)
        for function in stack.function_ids(template)
        for name, event in stack.function_events(template, function).items()
    ]
    example_name, example = stack.schedule_example(TEMPLATE)
    return [*events, ("StartFunction", example_name, example)]


def test_every_event_source_retries_a_bounded_number_of_times_then_dead_letters(
    template: dict[str, Any],
) -> None:
    events = every_event(template)
    assert {(f, n) for f, n, _ in events} >= {
        ("StartFunction", "SpecUploaded"),
        ("TrackFunction", "TrackSchedule"),
        ("TrackFunction", "CleanRoomsStatusChanged"),
    }
    for function, name, event in events:
        properties = event["Properties"]
        retry = properties["RetryPolicy"]
        assert 0 <= retry["MaximumRetryAttempts"] <= 5, (function, name)
        assert 60 <= retry["MaximumEventAgeInSeconds"] <= 3600, (function, name)
        assert properties["DeadLetterConfig"] == {
            "Arn": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}
        }, (function, name)
    for function in stack.function_ids(template):
        invoke = stack.function_property(template, function, "EventInvokeConfig")
        assert invoke["MaximumRetryAttempts"] == 2
        assert invoke["DestinationConfig"]["OnFailure"] == {
            "Type": "SQS",
            "Destination": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]},
        }


def test_dead_letter_queue_takes_messages_from_this_stacks_rules_only(
    template: dict[str, Any],
) -> None:
    resolver = make_resolver(template)
    queue = template["Resources"]["EventsDeadLetterQueue"]["Properties"]
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["SqsManagedSseEnabled"] is True
    document = template["Resources"]["EventsDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]
    statements = resolver.resolve(document)["Statement"]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert [s["Principal"] for s in allows] == [{"Service": "events.amazonaws.com"}]
    sources = set(allows[0]["Condition"]["ArnEquals"]["aws:SourceArn"])
    # Every EventBridgeRule event of the template, and nothing else.
    assert sources == {RULE_ARNS[r.rule_logical_id] for r in stack.event_rules(template)}
    assert_tls_only(resolver, "EventsDeadLetterQueuePolicy", DLQ_ARN)


def test_dead_letters_and_errors_raise_alarms(template: dict[str, Any]) -> None:
    resolver = make_resolver(template)
    alarm = resolver.resolve(template["Resources"]["EventsDeadLetterAlarm"]["Properties"])
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": "crq-dev-EventsDeadLetterQueue-X"}
    ]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    alarms = stack.resources(template, "AWS::CloudWatch::Alarm")
    watched = {
        a["Properties"]["Dimensions"][0]["Value"].get("Ref")
        for a in alarms.values()
        if a["Properties"]["Namespace"] == "AWS/Lambda"
    }
    assert watched == {"StartFunction", "TrackFunction"}
    # CloudWatch may publish to the encrypted alarms topic for exactly this stack's alarms.
    topic_policy = resolver.resolve(
        template["Resources"]["AlarmsTopicPolicy"]["Properties"]["PolicyDocument"]
    )
    key_policy = resolver.resolve(template["Resources"]["DataKey"]["Properties"]["KeyPolicy"])
    grants = [
        statement
        for statement in [*topic_policy["Statement"], *key_policy["Statement"]]
        if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert len(grants) == 2
    for name, resource in alarms.items():
        assert resource["Properties"]["AlarmActions"] == [{"Ref": "AlarmsTopic"}], name
        alarm_name = resolver.resolve(resource["Properties"]["AlarmName"])
        alarm_arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm_name}"
        for grant in grants:
            assert grant["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
            assert fnmatch.fnmatchcase(alarm_arn, grant["Condition"]["ArnLike"]["aws:SourceArn"])
    other_stack = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:crq-prod-dead-letters"
    assert not fnmatch.fnmatchcase(other_stack, grants[0]["Condition"]["ArnLike"]["aws:SourceArn"])


# ---------------------------------------------------------------- events


def test_spec_uploads_match_and_other_s3_events_do_not(template: dict[str, Any]) -> None:
    pattern = make_resolver(template).event_pattern(rule(template, "StartFunction", "SpecUploaded"))
    upload = load_event("start/s3-object-created.json")
    assert matches(pattern, upload)
    for key in ("specs/a.yml", "specs/team/b.json"):
        assert matches(pattern, {**upload, "detail": {**upload["detail"], "object": {"key": key}}})
    not_ours = sorted((EVENTS / "start" / "not-ours").glob("*.json"))
    assert len(not_ours) >= 4
    # Keys under specs/ all reach the function (a wildcard would be case-sensitive); it ignores
    # folder markers and other extensions itself, as `crq validate` judges names.
    judged_by_the_function = {"folder-marker.json", "wrong-extension.json"}
    for path in not_ours:
        delivered = matches(pattern, json.loads(path.read_text()))
        assert delivered == (path.name in judged_by_the_function), path.name
    deleted = EVENTS / "start" / "s3-object-deleted.json"
    assert not matches(pattern, json.loads(deleted.read_text())), deleted.name


def test_spec_deletions_match_and_uploads_do_not(template: dict[str, Any]) -> None:
    pattern = make_resolver(template).event_pattern(rule(template, "StartFunction", "SpecDeleted"))
    deleted = load_event("start/s3-object-deleted.json")
    assert matches(pattern, deleted)
    assert not matches(pattern, load_event("start/s3-object-created.json"))
    elsewhere = {**deleted["detail"], "object": {"key": "other/a.yaml"}}
    assert not matches(pattern, {**deleted, "detail": elsewhere})


def test_terminal_clean_rooms_events_wake_the_tracker(template: dict[str, Any]) -> None:
    pattern = make_resolver(template).event_pattern(
        rule(template, "TrackFunction", "CleanRoomsStatusChanged")
    )
    event = load_event("track/cleanrooms-query-succeeded.json")
    assert matches(pattern, event)
    assert matches(pattern, load_event("track/cleanrooms-without-ids.json"))
    for kind in ("Succeeded", "Failed", "Cancelled", "Timed Out"):
        assert matches(pattern, {**event, "detail-type": f"Protected Query {kind}"})
    for kind in ("Submitted", "Started", "Cancelling"):
        assert not matches(pattern, {**event, "detail-type": f"Protected Query {kind}"})
    assert not matches(pattern, {**event, "source": "crq.fake"})


def test_the_track_schedule_ticks_at_track_rate(template: dict[str, Any]) -> None:
    (schedule,) = stack.schedules(template)
    assert (schedule.function, schedule.name) == ("TrackFunction", "TrackSchedule")
    assert schedule.expression == {"Ref": "TrackRate"}
    assert template["Parameters"]["TrackRate"]["Default"] == "rate(1 minute)"
    assert schedule.input == load_event("track/tick.json")
    assert make_resolver(template).resolve(schedule.properties["Name"]) == f"{STACK}-track"


def test_the_schedule_example_is_a_working_spec_schedule(template: dict[str, Any]) -> None:
    name, event = stack.schedule_example(TEMPLATE)
    properties = event["Properties"]
    assert event["Type"] == "ScheduleV2"
    assert properties["ScheduleExpression"] == "cron(0 6 ? * MON *)"
    given = json.loads(properties["Input"])
    assert given == {
        "specKey": "specs/weekly-overlap.yaml",
        "scheduledTime": "<aws.scheduler.scheduled-time>",
        "scheduleArn": "<aws.scheduler.schedule-arn>",
        "executionId": "<aws.scheduler.execution-id>",
    }
    assert set(given) == set(load_event("start/schedule.json"))

    # Pasted into StartFunction's Events, SAM turns it into a schedule invoking the function.
    with_example = copy.deepcopy(template)
    with_example["Resources"]["StartFunction"]["Properties"]["Events"][name] = event
    resources = sam_translate(with_example)["Resources"]
    schedule = resources[f"StartFunction{name}"]
    assert schedule["Type"] == "AWS::Scheduler::Schedule"
    target = schedule["Properties"]["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["StartFunction", "Arn"]}
    assert json.loads(target["Input"])["specKey"] == "specs/weekly-overlap.yaml"
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}}


# ---------------------------------------------------------------- outputs and config files


def test_outputs_name_what_users_and_tests_need(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert {
        "SpecsBucketName",
        "TopicArn",
        "TableName",
        "StartFunctionName",
        "TrackFunctionName",
        "DeadLetterQueueUrl",
        "ScheduleGroupName",
    } <= set(outputs)
    assert outputs["ScheduleGroupName"]["Value"] == {"Ref": "SpecSchedules"}
    assert outputs["SpecsBucketName"]["Value"] == {"Ref": "SpecsBucket"}
    assert outputs["TopicArn"]["Value"] == {"Ref": "NotificationsTopic"}
    assert outputs["TableName"]["Value"] == {"Ref": "RunsTable"}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": "EventsDeadLetterQueue"}


def test_samconfig_environments_deploy_valid_parameters(template: dict[str, Any]) -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    parameters = template["Parameters"]
    for env, stack_name, confirm in (
        ("dev", "crq-dev", False),
        ("prod", "crq-prod", True),
    ):
        assert config[env]["global"]["parameters"]["stack_name"] == stack_name
        assert config[env]["build"]["parameters"] == {"cached": True, "parallel": True}
        deploy = config[env]["deploy"]["parameters"]
        assert deploy["capabilities"] == "CAPABILITY_IAM"
        assert deploy["resolve_s3"] is True
        assert deploy["confirm_changeset"] is confirm
        overrides = dict(
            item.split("=", 1) for item in deploy["parameter_overrides"].replace('"', "").split()
        )
        assert overrides["Environment"] == stack_name.removeprefix("crq-")
        for name, value in overrides.items():
            allowed = parameters[name].get("AllowedValues")
            assert allowed is None or value in [str(v) for v in allowed], (env, name)


def test_samconfig_environments_are_unambiguous() -> None:
    # Each stack is deployed by one environment only, and [default] deploys nothing: a
    # `sam deploy` without --config-env must not pick a stack with settings of its own.
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    deploying = {
        env: sections["global"]["parameters"]["stack_name"]
        for env, sections in config.items()
        if isinstance(sections, dict) and "deploy" in sections
    }
    assert "default" not in deploying
    assert "stack_name" not in config["default"].get("global", {}).get("parameters", {})
    assert sorted(deploying.values()) == sorted(set(deploying.values()))
    assert deploying == {"dev": "crq-dev", "prod": "crq-prod"}
    assert config["default"]["build"]["parameters"] == {"cached": True, "parallel": True}


def test_function_requirements_follow_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {
        str(Requirement(dep))
        for dep in project["dependencies"]
        if Requirement(dep).name != "boto3"  # the Lambda runtime ships boto3
    }
    lines = (ROOT / "src" / "requirements.in").read_text().splitlines()
    ranges = {str(Requirement(line)) for line in lines if line.strip() and not line.startswith("#")}
    assert ranges == wanted


def _lock() -> dict[str, tuple[str, list[str]]]:
    """src/requirements.txt (uv's format): name -> (pinned version, hashes)."""
    pins: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for raw in (ROOT / "src" / "requirements.txt").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--hash="):
            pins[name][1].append(line.removeprefix("--hash=").rstrip(" \\"))
            continue
        requirement = Requirement(line.rstrip(" \\"))
        name = requirement.name.lower()
        [spec] = list(requirement.specifier)
        assert spec.operator == "==", line
        pins[name] = (spec.version, [])
    return pins


def test_the_functions_lock_pins_every_package_with_hashes_and_leaves_out_the_runtimes() -> None:
    lock = _lock()
    # Every package pinned, with hashes (sam build installs it with --require-hashes)
    assert lock and all(hashes for _, hashes in lock.values()), lock
    # Within the ranges the functions ask for
    for line in (ROOT / "src" / "requirements.in").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            wanted = Requirement(line)
            assert wanted.name.lower() in lock, wanted
            assert wanted.specifier.contains(lock[wanted.name.lower()][0]), wanted
    # What the runtime ships is not bundled (a second botocore), nor the X-Ray SDK
    assert not {"boto3", "botocore", "s3transfer", "aws-xray-sdk"} & set(lock)


def test_sam_build_installs_the_lock_and_compiles_bytecode(template: dict[str, Any]) -> None:
    for function in ("StartFunction", "TrackFunction"):
        assert template["Resources"][function]["Metadata"]["BuildMethod"] == "makefile"
    recipe = (ROOT / "src" / "Makefile").read_text()
    assert "build-StartFunction build-TrackFunction:" in recipe
    assert "--require-hashes" in recipe and "-r requirements.txt" in recipe
    assert "compileall" in recipe
