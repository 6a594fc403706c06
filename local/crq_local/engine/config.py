"""The collaboration file: the engine's world in one YAML file (a user-facing contract).

`load_config(path)` parses and checks it, and refuses a malformed file with
`CollaborationFileError`, whose message names the file, the key path and the reason. The
format is documented in docs/engine.md; keys keep their meaning once published.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .durations import parse_duration
from .params import PARAMETER_TYPES, placeholders

UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ACCOUNT_PATTERN = r"\d{12}"
# A table name is used as an SQL identifier in the query's DuckDB connection.
TABLE_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
# The model's ResourceAlias pattern (analysis template names).
TEMPLATE_NAME_PATTERN = r"[a-zA-Z0-9_](([a-zA-Z0-9_ ]+-)*([a-zA-Z0-9_ ]+))?"
# Deterministic ids for what the file leaves out, so specs can name them across restarts.
_ID_NAMESPACE = uuid.UUID("7b0c51f4-3f0e-4a52-9a55-0d3c6f1d2e8a")

Ability = Literal["CAN_QUERY", "CAN_RECEIVE_RESULTS"]
AnalyticsEngine = Literal["SPARK", "CLEAN_ROOMS_SQL"]
Status = Literal[
    "SUBMITTED", "STARTED", "CANCELLED", "CANCELLING", "FAILED", "SUCCESS", "TIMED_OUT"
]


class CollaborationFileError(Exception):
    """The collaboration file cannot be used; the message says where and why."""

    def __init__(self, path: Path | str, problems: list[tuple[str, str]]) -> None:
        self.path = str(path)
        self.problems = problems
        lines = [f"{self.path}: {key or '<root>'}: {reason}" for key, reason in problems]
        super().__init__("invalid collaboration file\n  " + "\n  ".join(lines))


def derived_id(*parts: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, "/".join(parts)))


def _seconds(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0)]


class _Model(BaseModel):
    # Unknown keys are refused: a typo must not silently change what the engine does.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Member(_Model):
    accountId: str = Field(pattern=f"^{ACCOUNT_PATTERN}$")
    membershipId: str | None = Field(default=None, pattern=f"^{UUID_PATTERN}$")
    displayName: str | None = Field(default=None, min_length=1, max_length=100)
    abilities: list[Ability] = Field(default_factory=list)
    # MemberStatus. A caller's membership that is not ACTIVE answers GetMembership REMOVED and
    # may not start queries; another member that is not ACTIVE cannot receive results.
    status: Literal["ACTIVE", "INVITED", "LEFT", "REMOVED"] = "ACTIVE"


class Table(_Model):
    name: str = Field(pattern=f"^{TABLE_NAME_PATTERN}$")
    path: str = Field(min_length=1)
    format: Literal["csv", "parquet"] | None = None
    columns: list[str] | None = Field(default=None, min_length=1)
    # issue 11: the table's owner (default: the caller) and its analysis rule, in the API's
    # ConfiguredTableAnalysisRulePolicy shape (analysis_rules.py checks it against the model).
    creatorAccountId: str | None = Field(default=None, pattern=f"^{ACCOUNT_PATTERN}$")
    analysisRule: dict[str, Any] | None = None

    @property
    def is_s3(self) -> bool:
        return self.path.startswith("s3://")

    @property
    def file_format(self) -> Literal["csv", "parquet"]:
        if self.format:
            return self.format
        return "parquet" if self.path.lower().endswith((".parquet", ".pq")) else "csv"


class AnalysisParameter(_Model):
    name: str = Field(pattern=r"^[0-9a-zA-Z_]{1,100}$")
    type: str
    defaultValue: str | None = Field(default=None, max_length=1000)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in PARAMETER_TYPES:
            raise ValueError(f"must be one of {', '.join(PARAMETER_TYPES)}")
        return value


class AnalysisTemplate(_Model):
    name: str = Field(pattern=f"^{TEMPLATE_NAME_PATTERN}$", max_length=128)
    id: str | None = Field(default=None, pattern=f"^{UUID_PATTERN}$")
    description: str | None = Field(default=None, max_length=255)
    creatorAccountId: str | None = Field(default=None, pattern=f"^{ACCOUNT_PATTERN}$")
    sql: str = Field(min_length=1, max_length=500_000)
    parameters: list[AnalysisParameter] = Field(default_factory=list, max_length=50)
    # AnalysisFormat. Only SQL templates run as protected queries (PySpark ones are jobs).
    format: Literal["SQL", "PYSPARK_1_0", "PYSPARK_2_0"] = "SQL"

    @model_validator(mode="after")
    def _parameters_match_sql(self) -> AnalysisTemplate:
        declared = [p.name for p in self.parameters]
        if len(set(declared)) != len(declared):
            raise ValueError("parameters: each name may be declared once")
        undeclared = sorted(set(placeholders(self.sql)) - set(declared))
        if undeclared:
            names = ", ".join(f":{n}" for n in undeclared)
            raise ValueError(f"sql uses {names}, not declared under parameters")
        return self


class Collaboration(_Model):
    name: str = Field(min_length=1, max_length=100)
    id: str | None = Field(default=None, pattern=f"^{UUID_PATTERN}$")
    description: str | None = Field(default=None, max_length=255)
    creatorAccountId: str | None = Field(default=None, pattern=f"^{ACCOUNT_PATTERN}$")
    analyticsEngine: AnalyticsEngine = "SPARK"
    queryLogStatus: Literal["ENABLED", "DISABLED"] = "DISABLED"
    members: list[Member] = Field(min_length=1)
    tables: list[Table] = Field(default_factory=list)
    analysisTemplates: list[AnalysisTemplate] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Collaboration:
        for what, names in (
            ("members", [m.accountId for m in self.members]),
            ("tables", [t.name.lower() for t in self.tables]),
            ("analysisTemplates", [t.name for t in self.analysisTemplates]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what}: duplicate {', '.join(dupes)}")
        return self


class ThrottleFaults(_Model):
    firstRequests: int = Field(default=0, ge=0)
    forSeconds: Seconds = 0.0
    operations: list[str] | None = None


class Faults(_Model):
    throttle: ThrottleFaults | None = None
    # true drops every status event; a list drops the events of those statuses only.
    dropEvents: bool | list[str] = False
    slow: Seconds = 0.0

    @field_validator("dropEvents", mode="before")
    @classmethod
    def _statuses(cls, value: Any) -> Any:
        statuses = get_args(Status)
        if isinstance(value, bool) or (
            isinstance(value, list) and all(v in statuses for v in value)
        ):
            return value
        raise ValueError(f"must be true, false or a list of statuses ({', '.join(statuses)})")


class Limits(_Model):
    requestsPerSecond: float | None = Field(default=None, gt=0)
    burst: int | None = Field(default=None, ge=1)


class EngineConfig(_Model):
    """The parsed collaboration file. `base_dir` anchors the relative paths in it."""

    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    accountId: str = Field(pattern=f"^{ACCOUNT_PATTERN}$")
    membersDir: str | None = None
    limits: Limits = Field(default_factory=Limits)
    faults: Faults = Field(default_factory=Faults)
    collaborations: list[Collaboration] = Field(min_length=1)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    def resolve(self, relative: str) -> Path:
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.base_dir / path


def collaboration_id(c: Collaboration) -> str:
    return c.id or derived_id("collaboration", c.name)


def membership_id(c: Collaboration, m: Member) -> str:
    return m.membershipId or derived_id("membership", c.name, m.accountId)


def template_id(c: Collaboration, t: AnalysisTemplate) -> str:
    return t.id or derived_id("analysistemplate", c.name, t.name)


def load_config(path: str | Path) -> EngineConfig:
    """Read, parse and check a collaboration file. Raises CollaborationFileError."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CollaborationFileError(file, [("", f"cannot be read: {exc}")]) from exc
    try:
        # safe_load: a collaboration file must never construct Python objects.
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CollaborationFileError(file, [("", f"is not valid YAML: {exc}")]) from exc
    return parse_config(raw, source=file)


def parse_config(raw: Any, *, source: str | Path = "<collaboration>") -> EngineConfig:
    """Check an already-parsed collaboration document (tests build them as dicts)."""
    src = Path(source)
    if not isinstance(raw, dict):
        raise CollaborationFileError(src, [("", "must be a mapping with collaborations")])
    base_dir = src.parent.resolve() if src.name != "<collaboration>" else Path.cwd()
    try:
        config = EngineConfig.model_validate({**raw, "base_dir": base_dir})
    except ValidationError as exc:
        raise CollaborationFileError(src, _problems(exc)) from exc
    problems = _cross_checks(config) or _check_local_tables(config) or _check_rules(config)
    if problems:
        raise CollaborationFileError(src, problems)
    return config


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        key = _key_path(err["loc"])
        reason = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            reason = "unknown key"
        out.append((key, reason))
    return out


def _key_path(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif not re.fullmatch(r"[a-z]+\[.*\]|function-.*", str(part)):
            key = f"{key}.{part}" if key else str(part)
    return key


def _cross_checks(config: EngineConfig) -> list[tuple[str, str]]:
    problems = []
    seen: dict[str, str] = {}
    for ci, c in enumerate(config.collaborations):
        key = f"collaborations[{ci}]"
        accounts = {m.accountId for m in c.members}
        if config.accountId not in accounts:
            problems.append(
                (f"{key}.members", f"the caller account {config.accountId} is not a member")
            )
        for ti, tb in enumerate(c.tables):
            if tb.creatorAccountId and tb.creatorAccountId not in accounts:
                problems.append((f"{key}.tables[{ti}].creatorAccountId", "is not a member"))
        for ti, t in enumerate(c.analysisTemplates):
            if t.creatorAccountId and t.creatorAccountId not in accounts:
                problems.append(
                    (f"{key}.analysisTemplates[{ti}].creatorAccountId", "is not a member")
                )
        ids = [(f"{key}.id", collaboration_id(c))]
        ids += [
            (f"{key}.members[{i}].membershipId", membership_id(c, m))
            for i, m in enumerate(c.members)
        ]
        ids += [
            (f"{key}.analysisTemplates[{i}].id", template_id(c, t))
            for i, t in enumerate(c.analysisTemplates)
        ]
        for where, value in ids:
            if value in seen:
                problems.append((where, f"{value} is already the id at {seen[value]}"))
            seen.setdefault(value, where)
    return problems


def _check_local_tables(config: EngineConfig) -> list[tuple[str, str]]:
    """Local tables must exist and have the allowed columns; S3 tables are read per query."""
    from .tables import TableReadError, describe_columns

    problems = []
    for ci, c in enumerate(config.collaborations):
        for ti, t in enumerate(c.tables):
            key = f"collaborations[{ci}].tables[{ti}]"
            if t.is_s3:
                if not re.fullmatch(r"s3://[^/]+/.+", t.path):
                    problems.append((f"{key}.path", "must be s3://bucket/key"))
                continue
            file = config.resolve(t.path)
            if not file.is_file():
                problems.append((f"{key}.path", f"no such file: {file}"))
                continue
            try:
                actual = describe_columns(file, t.file_format)
            except TableReadError as exc:
                problems.append((f"{key}.path", str(exc)))
                continue
            for i, column in enumerate(t.columns or []):
                if column not in actual:
                    problems.append(
                        (f"{key}.columns[{i}]", f"{column!r} is not a column of {t.path}")
                    )
    return problems


def _check_rules(config: EngineConfig) -> list[tuple[str, str]]:
    """Each table's analysisRule against the model and the table's columns (issue 11)."""
    from .analysis_rules import check_rules
    from .tables import TableReadError, describe_columns

    columns_of: dict[tuple[int, int], list[str] | None] = {}
    for ci, c in enumerate(config.collaborations):
        for ti, t in enumerate(c.tables):
            if t.analysisRule is None:
                continue
            if t.columns or t.is_s3:
                columns_of[(ci, ti)] = t.columns
                continue
            try:
                columns_of[(ci, ti)] = describe_columns(config.resolve(t.path), t.file_format)
            except TableReadError:
                columns_of[(ci, ti)] = None  # already reported by _check_local_tables
    return check_rules(config, columns_of)
