"""The stack's resources, created on moto from `template.yaml`: the one builder of crq's stack
in miniature, used by the sandbox (on its moto server), the integration tests' `pipeline_stack`
fixture and the bench (in-process `mock_aws`).

Everything comes from the template through `crq_local.stack` (the same reading the template's
tests use): bucket settings, the table with its indexes and TTL, topics, queues, alarms, the
EventBridge rules' patterns, the schedules and their input, each function's handler, limits,
retry policy and environment. The sandbox only picks physical names; the template's intrinsic
functions are resolved with them, so a name or pattern changed in the template changes here.

What the sandbox leaves out, because it does not change what the handlers see: the KMS key
(objects and messages are not encrypted), bucket and topic policies, log groups, access logs,
IAM roles (only their ARNs exist). Schedule groups are created; the spec schedules the start
function puts in them fire on the sandbox's clock (spec_clock.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crq_local import stack
from crq_local.sandbox.lambda_runtime import FunctionDefinition
from crq_local.sandbox.router import EventRoute

# What Lambda's asynchronous invoke does when EventInvokeConfig does not say.
DEFAULT_ASYNC_RETRIES = 2
# Long enough for any handler: a failed event is made visible again explicitly (router.py).
FUNCTION_QUEUE_VISIBILITY_SECONDS = 300
# create_queue takes these CloudFormation properties as attributes, as strings.
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
)
# The bucket settings that change what the handlers see (encryption and logging do not).
_BUCKET_PROPERTIES = (
    "VersioningConfiguration",
    "PublicAccessBlockConfiguration",
    "NotificationConfiguration",
)
_ALARM_PROPERTIES = (
    "AlarmDescription",
    "Namespace",
    "MetricName",
    "Dimensions",
    "Statistic",
    "ExtendedStatistic",
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "AlarmActions",
    "OKActions",
    "InsufficientDataActions",
    "Unit",
)


def physical_name(stack_name: str, logical_id: str) -> str:
    """`crq-sandbox` + `SpecsBucket` -> `crq-sandbox-specs-bucket` (valid for every service)."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", logical_id).lower()
    return f"{stack_name}-{words}"


@dataclass(frozen=True)
class Queue:
    name: str
    url: str
    arn: str


@dataclass(frozen=True)
class TrackedSchedule:
    """A schedule created on the Scheduler endpoint, and the function it targets."""

    name: str
    function: str  # logical id
    expression: str
    input: str  # the Target's Input as the template writes it (JSON text)
    timezone: str = "UTC"


@dataclass
class SandboxStack:
    """The resources created, by logical id, with the names the sandbox picked."""

    stack_name: str
    region: str
    account_id: str
    buckets: dict[str, str] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)  # ARNs
    queues: dict[str, Queue] = field(default_factory=dict)
    functions: dict[str, FunctionDefinition] = field(default_factory=dict)
    routes: list[EventRoute] = field(default_factory=list)
    rules: dict[str, str] = field(default_factory=dict)  # rule logical id -> rule name
    schedules: list[TrackedSchedule] = field(default_factory=list)
    schedule_groups: dict[str, str] = field(default_factory=dict)  # logical id -> group name
    alarms: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AwsClients:
    s3: Any
    dynamodb: Any
    sns: Any
    sqs: Any
    events: Any
    scheduler: Any
    cloudwatch: Any

    @classmethod
    def of(cls, client: Callable[[str], Any]) -> AwsClients:
        """One client per service, from a factory (`boto3.client`, a session's `client`)."""
        return cls(
            s3=client("s3"),
            dynamodb=client("dynamodb"),
            sns=client("sns"),
            sqs=client("sqs"),
            events=client("events"),
            scheduler=client("scheduler"),
            cloudwatch=client("cloudwatch"),
        )


def create_stack(
    template: Mapping[str, Any],
    clients: AwsClients,
    *,
    stack_name: str,
    region: str,
    account_id: str,
    parameters: Mapping[str, Any],
) -> SandboxStack:
    """Create the template's resources on the sandbox's endpoint; return what was created."""
    created = SandboxStack(stack_name, region, account_id)
    refs: dict[str, Any] = {}
    attributes: dict[str, Any] = {}

    def resolver() -> stack.Resolver:
        return stack.Resolver(
            template,
            parameters=parameters,
            refs=refs,
            attributes=attributes,
            stack_name=stack_name,
            region=region,
            account_id=account_id,
        )

    # Names first: resources refer to each other (patterns name the bucket, alarms the queue).
    for logical_id in stack.resources(template, "AWS::S3::Bucket"):
        name = created.buckets[logical_id] = physical_name(stack_name, logical_id)
        refs[logical_id] = name
        attributes[f"{logical_id}.Arn"] = f"arn:aws:s3:::{name}"
    for logical_id in stack.resources(template, "AWS::DynamoDB::Table"):
        name = created.tables[logical_id] = physical_name(stack_name, logical_id)
        refs[logical_id] = name
        attributes[f"{logical_id}.Arn"] = f"arn:aws:dynamodb:{region}:{account_id}:table/{name}"
    for logical_id in stack.resources(template, "AWS::SNS::Topic"):
        name = physical_name(stack_name, logical_id)
        arn = created.topics[logical_id] = f"arn:aws:sns:{region}:{account_id}:{name}"
        refs[logical_id] = arn
        attributes[f"{logical_id}.TopicName"] = name
    for logical_id, resource in stack.resources(template, "AWS::SQS::Queue").items():
        queue = _create_queue(
            clients.sqs, physical_name(stack_name, logical_id), resource.get("Properties", {})
        )
        created.queues[logical_id] = queue
        refs[logical_id] = queue.url
        attributes[f"{logical_id}.Arn"] = queue.arn
        attributes[f"{logical_id}.QueueName"] = queue.name
    for logical_id in stack.function_ids(template):
        raw_name = stack.function_property(template, logical_id, "FunctionName")
        name = resolver().resolve(raw_name) if raw_name else physical_name(stack_name, logical_id)
        refs[logical_id] = name
        attributes[f"{logical_id}.Arn"] = f"arn:aws:lambda:{region}:{account_id}:function:{name}"
    for logical_id in stack.resources(template, "AWS::Scheduler::ScheduleGroup"):
        name = created.schedule_groups[logical_id] = physical_name(stack_name, logical_id)
        refs[logical_id] = name
        arn = clients.scheduler.create_schedule_group(Name=name)["ScheduleGroupArn"]
        attributes[f"{logical_id}.Arn"] = arn
    for logical_id in stack.resources(template, "AWS::IAM::Role"):
        # Roles are not enforced locally; their ARNs are what the functions pass around.
        name = physical_name(stack_name, logical_id)
        attributes[f"{logical_id}.Arn"] = f"arn:aws:iam::{account_id}:role/{name}"
    for rule in stack.event_rules(template):
        name = created.rules[rule.rule_logical_id] = physical_name(stack_name, rule.rule_logical_id)
        attributes[f"{rule.rule_logical_id}.Arn"] = (
            f"arn:aws:events:{region}:{account_id}:rule/{name}"
        )
    resolve = resolver()

    for logical_id, name in created.buckets.items():
        properties = template["Resources"][logical_id].get("Properties", {})
        _create_bucket(
            clients.s3,
            name,
            region,
            {
                key: resolve.resolve(properties[key])
                for key in _BUCKET_PROPERTIES
                if key in properties
            },
        )
    for logical_id, name in created.tables.items():
        _create_table(clients.dynamodb, template, logical_id, name)
    for arn in created.topics.values():
        clients.sns.create_topic(Name=arn.rsplit(":", 1)[1])

    queue_by_arn = {queue.arn: queue for queue in created.queues.values()}
    for logical_id in stack.function_ids(template):
        created.functions[logical_id] = _function(
            template, logical_id, resolve, refs[logical_id], queue_by_arn, region, account_id
        )
    _create_rules(template, clients, created, resolve)
    _create_schedules(template, clients.scheduler, created, resolve, attributes)
    for logical_id, resource in stack.resources(template, "AWS::CloudWatch::Alarm").items():
        name = physical_name(stack_name, logical_id)
        properties = resolve.resolve(resource.get("Properties", {}))
        alarm = {key: properties[key] for key in _ALARM_PROPERTIES if key in properties}
        clients.cloudwatch.put_metric_alarm(AlarmName=name, **alarm)
        created.alarms.append(name)
    return created


def _create_queue(sqs: Any, name: str, properties: Mapping[str, Any]) -> Queue:
    attributes = {key: str(properties[key]) for key in _QUEUE_ATTRIBUTES if key in properties}
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return Queue(name, url, arn)


def create_bucket(s3: Any, name: str, region: str) -> None:
    """A bucket in `region`: S3 refuses a LocationConstraint in us-east-1 and needs one elsewhere."""
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})


def _create_bucket(s3: Any, name: str, region: str, properties: Mapping[str, Any]) -> None:
    create_bucket(s3, name, region)
    if properties.get("VersioningConfiguration", {}).get("Status") == "Enabled":
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    block = properties.get("PublicAccessBlockConfiguration")
    if block:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
    notifications = properties.get("NotificationConfiguration", {})
    if notifications.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
        # The S3 API spells "on" as an empty EventBridgeConfiguration.
        s3.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )


def _create_table(dynamodb: Any, template: Mapping[str, Any], logical_id: str, name: str) -> None:
    dynamodb.create_table(TableName=name, **stack.table_definition(template, logical_id))
    ttl = stack.table_ttl_attribute(template, logical_id)
    if ttl:
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl, "Enabled": True}
        )


def _function(
    template: Mapping[str, Any],
    logical_id: str,
    resolve: stack.Resolver,
    name: str,
    queue_by_arn: Mapping[str, Queue],
    region: str,
    account_id: str,
) -> FunctionDefinition:
    invoke_config = resolve.resolve(
        stack.function_property(template, logical_id, "EventInvokeConfig", {})
    )
    on_failure = invoke_config.get("DestinationConfig", {}).get("OnFailure", {})
    destination = queue_by_arn.get(on_failure.get("Destination", ""))
    return FunctionDefinition(
        logical_id=logical_id,
        name=name,
        handler=stack.function_handler(template, logical_id),
        environment=resolve.environment(logical_id),
        timeout_seconds=int(
            resolve.resolve(stack.function_property(template, logical_id, "Timeout", 3))
        ),
        memory_mb=int(
            resolve.resolve(stack.function_property(template, logical_id, "MemorySize", 128))
        ),
        region=region,
        account_id=account_id,
        async_retries=int(invoke_config.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES)),
        on_failure_queue_url=destination.url if destination else None,
    )


def _create_rules(
    template: Mapping[str, Any],
    clients: AwsClients,
    created: SandboxStack,
    resolve: stack.Resolver,
) -> None:
    """Each rule on the default bus, targeting the queue that stands for its function."""
    function_queues: dict[str, Queue] = {}
    for rule in stack.event_rules(template):
        function = created.functions[rule.function]
        queue = function_queues.get(rule.function)
        if queue is None:
            queue = function_queues[rule.function] = _create_queue(
                clients.sqs,
                f"{function.name}-invocations",
                {"VisibilityTimeout": FUNCTION_QUEUE_VISIBILITY_SECONDS},
            )
            created.routes.append(
                EventRoute(
                    function=rule.function,
                    queue_url=queue.url,
                    max_attempts=1 + function.async_retries,
                    on_failure_queue_url=function.on_failure_queue_url,
                )
            )
        name = created.rules[rule.rule_logical_id]
        clients.events.put_rule(
            Name=name,
            EventPattern=json.dumps(resolve.event_pattern(rule)),
            State="ENABLED",
            Description=f"{rule.function} {rule.name} (template.yaml)",
        )
        target: dict[str, Any] = {"Id": rule.function, "Arn": queue.arn}
        properties = resolve.resolve(rule.properties)
        if "RetryPolicy" in properties:
            target["RetryPolicy"] = properties["RetryPolicy"]
        clients.events.put_targets(Rule=name, Targets=[target])


def _create_schedules(
    template: Mapping[str, Any],
    scheduler: Any,
    created: SandboxStack,
    resolve: stack.Resolver,
    attributes: Mapping[str, Any],
) -> None:
    role = f"arn:aws:iam::{created.account_id}:role/{created.stack_name}-scheduler"
    for schedule in stack.schedules(template):
        properties = resolve.resolve(schedule.properties)
        name = properties.get("Name") or physical_name(
            created.stack_name, schedule.function + schedule.name
        )
        target: dict[str, Any] = {
            "Arn": attributes[f"{schedule.function}.Arn"],
            "RoleArn": role,
            "Input": properties.get("Input", "{}"),
        }
        for key in ("RetryPolicy", "DeadLetterConfig"):
            if key in properties:
                target[key] = properties[key]
        timezone = properties.get("ScheduleExpressionTimezone") or "UTC"
        scheduler.create_schedule(
            Name=name,
            ScheduleExpression=properties["ScheduleExpression"],
            ScheduleExpressionTimezone=timezone,
            FlexibleTimeWindow=properties.get("FlexibleTimeWindow", {"Mode": "OFF"}),
            Target=target,
            State="ENABLED",
        )
        created.schedules.append(
            TrackedSchedule(
                name, schedule.function, properties["ScheduleExpression"], target["Input"], timezone
            )
        )
