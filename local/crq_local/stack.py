"""Read crq's ``template.yaml`` as CloudFormation would, so local copies of the stack cannot drift.

The sandbox builds its tables, rules, schedules and function environments from these helpers, and
``tests/integration/test_template.py`` checks the template through them.

Loading
    ``TEMPLATE_PATH``
        The repository's ``template.yaml``.
    ``load_template(path=TEMPLATE_PATH) -> dict``
        Parse the template; CloudFormation short forms become long forms: ``!Ref X`` ->
        ``{"Ref": "X"}``, ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``, ``!Sub s`` ->
        ``{"Fn::Sub": "s"}``, ``!Condition C`` -> ``{"Condition": "C"}``, any other ``!Name`` ->
        ``{"Fn::Name": ...}``. YAML anchors are expanded.
    ``schedule_example(path=TEMPLATE_PATH) -> (name, event)``
        The commented-out ``ScheduleV2`` event the template shows for running a spec on a
        schedule (between ``# --- schedule example start ---`` and ``... end ---``), parsed.

Reading (raw: intrinsic functions left in place; resolve them with ``Resolver``)
    ``resources(template, type_=None) -> dict[logical_id, resource]``
    ``function_ids(template) -> list[str]``  every ``AWS::Serverless::Function``.
    ``function_property(template, logical_id, name, default=None)``  a property, falling back to
        ``Globals.Function``.
    ``function_handler(template, logical_id) -> str``  e.g. ``"handlers.start.handler"``.
    ``function_environment(template, logical_id) -> dict``  Globals merged with the function's.
    ``function_events(template, logical_id) -> dict[event_name, event]``
    ``event_rules(template) -> list[EventRule]``  every ``EventBridgeRule`` event.
    ``schedules(template) -> list[Schedule]``  every ``ScheduleV2`` event; ``input`` is parsed JSON.
    ``table_definition(template, logical_id="RunsTable") -> dict``  keyword arguments for
        DynamoDB ``create_table`` (add ``TableName``).
    ``table_ttl_attribute(template, logical_id="RunsTable") -> str | None``
    ``parameter_defaults(template) -> dict``  CommaDelimitedList defaults become lists.

Resolving
    ``Resolver(template, parameters=None, refs=None, attributes=None, stack_name="crq-local",
    region="us-east-1", account_id="123456789012", partition="aws")``
        ``parameters`` override the template's defaults (a CommaDelimitedList may be given as a
        list or a comma-separated string); ``refs`` maps logical ids to what ``Ref`` returns
        (bucket name, table name, topic ARN, queue URL, function name...); ``attributes`` maps
        ``"LogicalId.Attribute"`` to what ``Fn::GetAtt`` returns. A reference that is not given
        raises ``UnresolvedReference``.
    ``Resolver.resolve(value)``  evaluate ``Ref``, ``Fn::GetAtt``, ``Fn::Sub``, ``Fn::Join``,
        ``Fn::Split``, ``Fn::Select``, ``Fn::If`` (with the template's Conditions) and drop
        ``AWS::NoValue``.
    ``Resolver.condition(name) -> bool``
    ``Resolver.environment(logical_id) -> dict[str, str]``  a function's resolved environment,
        every value a string as Lambda passes it.
    ``Resolver.event_pattern(rule) -> dict``  an ``EventRule``'s pattern, resolved.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"

_EXAMPLE_START = "# --- schedule example start ---"
_EXAMPLE_END = "# --- schedule example end ---"
_PSEUDO = ("AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName", "AWS::URLSuffix")


class UnresolvedReference(KeyError):
    """A ``Ref`` or ``Fn::GetAtt`` named something the ``Resolver`` was not told about."""


# ---------------------------------------------------------------- loading


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation's short-form tags into their long forms."""


def _construct_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise yaml.constructor.ConstructorError(None, None, f"bad node for !{tag_suffix}")
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        logical_id, _, attribute = value.partition(".")
        value = [logical_id, attribute]
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def _parse(text: str) -> Any:
    return yaml.load(text, Loader=_CfnLoader)  # a SafeLoader subclass


def load_template(path: str | Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template, intrinsic short forms included."""
    template = _parse(Path(path).read_text(encoding="utf-8"))
    if not isinstance(template, dict) or "Resources" not in template:
        raise ValueError(f"{path} is not a CloudFormation template")
    return template


def schedule_example(path: str | Path = TEMPLATE_PATH) -> tuple[str, dict[str, Any]]:
    """The commented-out per-spec ``ScheduleV2`` event shown in the template, parsed."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == _EXAMPLE_START]
    ends = [i for i, line in enumerate(lines) if line.strip() == _EXAMPLE_END]
    if len(starts) != 1 or len(ends) != 1 or ends[0] <= starts[0]:
        raise ValueError(f"{path} has no single schedule example block")
    body = []
    for line in lines[starts[0] + 1 : ends[0]]:
        stripped = line.lstrip()
        if not stripped.startswith("#"):
            raise ValueError(f"schedule example line is not commented out: {line!r}")
        body.append(stripped[1:])
    parsed = _parse("\n".join(body))
    if not isinstance(parsed, dict) or len(parsed) != 1:
        raise ValueError("the schedule example must define exactly one event")
    ((name, event),) = parsed.items()
    return name, event


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class EventRule:
    """An ``EventBridgeRule`` event of a function (SAM names the rule ``function + name``)."""

    function: str
    name: str
    pattern: dict[str, Any]
    properties: dict[str, Any]

    @property
    def rule_logical_id(self) -> str:
        return f"{self.function}{self.name}"


@dataclass(frozen=True)
class Schedule:
    """A ``ScheduleV2`` event of a function; ``input`` is the parsed JSON input."""

    function: str
    name: str
    expression: Any
    input: dict[str, Any]
    properties: dict[str, Any]


def resources(template: Mapping[str, Any], type_: str | None = None) -> dict[str, dict[str, Any]]:
    """Resources by logical id, optionally only those of one type."""
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if type_ is None or resource.get("Type") == type_
    }


def function_ids(template: Mapping[str, Any]) -> list[str]:
    return sorted(resources(template, "AWS::Serverless::Function"))


def _function(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    resource = template["Resources"].get(logical_id)
    if resource is None or resource.get("Type") != "AWS::Serverless::Function":
        raise KeyError(f"{logical_id} is not an AWS::Serverless::Function")
    return resource.get("Properties", {})


def _function_globals(template: Mapping[str, Any]) -> dict[str, Any]:
    return template.get("Globals", {}).get("Function", {})


def function_property(
    template: Mapping[str, Any], logical_id: str, name: str, default: Any = None
) -> Any:
    """A function property as SAM sees it: the function's own value, else Globals'."""
    own = _function(template, logical_id)
    if name in own:
        return own[name]
    return _function_globals(template).get(name, default)


def function_handler(template: Mapping[str, Any], logical_id: str) -> str:
    handler = function_property(template, logical_id, "Handler")
    if not isinstance(handler, str):
        raise ValueError(f"{logical_id} has no literal Handler")
    return handler


def function_environment(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """Environment variables (unresolved): Globals' merged with the function's own."""
    merged: dict[str, Any] = {}
    for source in (_function_globals(template), _function(template, logical_id)):
        merged.update(source.get("Environment", {}).get("Variables", {}))
    return merged


def function_events(template: Mapping[str, Any], logical_id: str) -> dict[str, dict[str, Any]]:
    return dict(_function(template, logical_id).get("Events", {}))


def event_rules(template: Mapping[str, Any]) -> list[EventRule]:
    found = []
    for function in function_ids(template):
        for name, event in function_events(template, function).items():
            if event.get("Type") == "EventBridgeRule":
                properties = event.get("Properties", {})
                found.append(EventRule(function, name, properties["Pattern"], properties))
    return found


def schedules(template: Mapping[str, Any]) -> list[Schedule]:
    found = []
    for function in function_ids(template):
        for name, event in function_events(template, function).items():
            if event.get("Type") == "ScheduleV2":
                found.append(_schedule(function, name, event))
    return found


def _schedule(function: str, name: str, event: Mapping[str, Any]) -> Schedule:
    properties = dict(event.get("Properties", {}))
    raw_input = properties.get("Input", "{}")
    if not isinstance(raw_input, str):
        raise ValueError(f"{function}.{name}: Input must be a literal JSON string")
    return Schedule(
        function, name, properties.get("ScheduleExpression"), json.loads(raw_input), properties
    )


def table_definition(template: Mapping[str, Any], logical_id: str = "RunsTable") -> dict[str, Any]:
    """``create_table`` keyword arguments for a table of the template (without TableName)."""
    properties = template["Resources"][logical_id]["Properties"]
    definition: dict[str, Any] = {
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    if properties.get("GlobalSecondaryIndexes"):
        definition["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
    return definition


def table_ttl_attribute(template: Mapping[str, Any], logical_id: str = "RunsTable") -> str | None:
    ttl = template["Resources"][logical_id]["Properties"].get("TimeToLiveSpecification", {})
    return ttl.get("AttributeName") if ttl.get("Enabled") else None


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters that have a default, CommaDelimitedList ones as lists."""
    defaults: dict[str, Any] = {}
    for name, parameter in template.get("Parameters", {}).items():
        if "Default" in parameter:
            defaults[name] = _parameter_value(parameter, parameter["Default"])
    return defaults


def _parameter_value(parameter: Mapping[str, Any], value: Any) -> Any:
    if parameter.get("Type") == "CommaDelimitedList":
        if isinstance(value, str):
            return [item.strip() for item in value.split(",")]
        return [str(item) for item in value]
    return value


# ---------------------------------------------------------------- resolving


class _NoValue:
    """``AWS::NoValue``: removed from the list or mapping that holds it."""


NO_VALUE = _NoValue()
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass
class Resolver:
    """Evaluates intrinsic functions against parameter values and known physical names."""

    template: Mapping[str, Any]
    parameters: Mapping[str, Any] | None = None
    refs: Mapping[str, Any] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    stack_name: str = "crq-local"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    partition: str = "aws"

    def __post_init__(self) -> None:
        declared = self.template.get("Parameters", {})
        values = parameter_defaults(self.template)
        for name, value in (self.parameters or {}).items():
            if name not in declared:
                raise KeyError(f"template has no parameter {name}")
            values[name] = _parameter_value(declared[name], value)
        missing = sorted(set(declared) - set(values))
        if missing:
            raise ValueError(f"parameters without a default need a value: {', '.join(missing)}")
        self._values = values

    # -- public

    def resolve(self, value: Any) -> Any:
        resolved = self._resolve(value)
        return None if resolved is NO_VALUE else resolved

    def condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions", {})
        if name not in conditions:
            raise KeyError(f"template has no condition {name}")
        return bool(self._resolve(conditions[name]))

    def environment(self, logical_id: str) -> dict[str, str]:
        raw = function_environment(self.template, logical_id)
        return {name: _as_env_string(self.resolve(value)) for name, value in raw.items()}

    def event_pattern(self, rule: EventRule) -> dict[str, Any]:
        pattern = self.resolve(rule.pattern)
        if not isinstance(pattern, dict):
            raise ValueError(f"{rule.rule_logical_id}: pattern is not an object")
        return pattern

    # -- evaluation

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self._resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            handler = self._functions().get(key)
            if handler is not None:
                return handler(argument)
        resolved = {key: self._resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _functions(self) -> dict[str, Any]:
        return {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::Split": self._split,
            "Fn::Select": self._select,
            "Fn::If": self._if,
            "Fn::Equals": self._equals,
            "Fn::Not": lambda arg: not self._resolve(arg[0]),
            "Fn::And": lambda arg: all(self._resolve(item) for item in arg),
            "Fn::Or": lambda arg: any(self._resolve(item) for item in arg),
            "Condition": self.condition,
        }

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in _PSEUDO:
            return self._pseudo(name)
        if name in self._values:
            return self._values[name]
        if name in self.refs:
            return self.refs[name]
        raise UnresolvedReference(f"no value given for Ref {name}")

    def _pseudo(self, name: str) -> str:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": self.partition,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }[name]

    def _get_att(self, argument: list[Any]) -> Any:
        logical_id, attribute = self._resolve(argument[0]), self._resolve(argument[1])
        key = f"{logical_id}.{attribute}"
        if key not in self.attributes:
            raise UnresolvedReference(f"no value given for Fn::GetAtt {key}")
        return self.attributes[key]

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        local = {name: self._resolve(value) for name, value in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} stays as ${Literal}
                return "${" + name[1:] + "}"
            if name in local:
                return str(local[name])
            if "." in name and name.split(".", 1)[0] not in self._values:
                logical_id, attribute = name.split(".", 1)
                return str(self._get_att([logical_id, attribute]))
            return _as_env_string(self._ref(name))

        return _SUB_VARIABLE.sub(substitute, text)

    def _join(self, argument: list[Any]) -> str:
        delimiter, items = argument
        return str(delimiter).join(str(item) for item in self._as_list(items))

    def _split(self, argument: list[Any]) -> list[str]:
        delimiter, text = argument
        return str(self._resolve(text)).split(delimiter)

    def _select(self, argument: list[Any]) -> Any:
        index, items = argument
        return self._as_list(items)[int(self._resolve(index))]

    def _if(self, argument: list[Any]) -> Any:
        name, when_true, when_false = argument
        return self._resolve(when_true if self.condition(name) else when_false)

    def _equals(self, argument: list[Any]) -> bool:
        left, right = (self._resolve(item) for item in argument)
        return _as_env_string(left) == _as_env_string(right)

    def _as_list(self, value: Any) -> list[Any]:
        resolved = self._resolve(value)
        if not isinstance(resolved, list):
            raise ValueError(f"expected a list, got {resolved!r}")
        return resolved


def _as_env_string(value: Any) -> str:
    """A resolved value as CloudFormation renders it in a string (lists comma-joined)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_as_env_string(item) for item in value)
    return str(value)


def statements(policy_documents: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """All statements of resolved SAM ``Policies`` entries (inline documents only)."""
    found: list[dict[str, Any]] = []
    for document in policy_documents:
        if not isinstance(document, Mapping) or "Statement" not in document:
            raise ValueError(f"only inline policy statements are expected, got {document!r}")
        body = document["Statement"]
        found.extend(body if isinstance(body, list) else [body])
    return found
