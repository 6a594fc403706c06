"""GetSchema, ListSchemas, GetSchemaAnalysisRule and their Batch forms: the tables as the
collaboration's members see them, with their analysis rules, in the API's shapes.

A schema lists the table's allowed columns only (a private column is not part of the
configured table), with DuckDB's reading of their types in lower case (`varchar`, `bigint`,
`date`, ...); an S3 table's types are not read (`unknown`), since that would mean a download.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from . import pages
from .analysis_rules import TableRule, api_rule_shape, rule_of
from .errors import ResourceNotFoundException
from .tables import reader_sql

if TYPE_CHECKING:
    from .config import EngineConfig, Table
    from .world import Collaboration, World


class Schemas:
    """The schema operations over one engine's world; column types read once per file."""

    def __init__(self, world: World, config: EngineConfig) -> None:
        self._world = world
        self._config = config
        self._lock = threading.Lock()
        self._types: dict[tuple[str, int, int], dict[str, str]] = {}

    # ---- operations --------------------------------------------------------------------

    def get_schema(self, params: dict[str, Any]) -> dict[str, Any]:
        collab = self._world.member_collaboration(params["collaborationIdentifier"])
        return {"schema": self._schema(collab, self._table(collab, params["name"]))}

    def list_schemas(self, params: dict[str, Any]) -> dict[str, Any]:
        collab = self._world.member_collaboration(params["collaborationIdentifier"])
        wanted = params.get("schemaType")
        found = list(collab.tables) if wanted in (None, "TABLE") else []
        page, token = pages.page(found, params)
        out: dict[str, Any] = {"schemaSummaries": [self._summary(collab, t) for t in page]}
        return out | ({"nextToken": token} if token else {})

    def batch_get_schema(self, params: dict[str, Any]) -> dict[str, Any]:
        collab = self._world.member_collaboration(params["collaborationIdentifier"])
        schemas, errors = [], []
        for name in params["names"]:
            try:
                schemas.append(self._schema(collab, self._table(collab, name)))
            except ResourceNotFoundException as exc:
                errors.append({"name": name, "code": exc.code, "message": exc.message})
        return {"schemas": schemas, "errors": errors}

    def get_schema_analysis_rule(self, params: dict[str, Any]) -> dict[str, Any]:
        collab = self._world.member_collaboration(params["collaborationIdentifier"])
        rule = self._rule(collab, params["name"], params["type"])
        return {"analysisRule": api_rule_shape(rule, collab.id, self._world.created)}

    def batch_get_schema_analysis_rule(self, params: dict[str, Any]) -> dict[str, Any]:
        collab = self._world.member_collaboration(params["collaborationIdentifier"])
        rules, errors = [], []
        for request in params["schemaAnalysisRuleRequests"]:
            name, kind = request["name"], request["type"]
            try:
                rule = self._rule(collab, name, kind)
            except ResourceNotFoundException as exc:
                errors.append(
                    {"name": name, "type": kind, "code": exc.code, "message": exc.message}
                )
                continue
            rules.append(api_rule_shape(rule, collab.id, self._world.created))
        return {"analysisRules": rules, "errors": errors}

    # ---- lookups -----------------------------------------------------------------------

    def _table(self, collab: Collaboration, name: str) -> Table:
        table = next((t for t in collab.tables if t.name == name), None)
        if table is None:
            raise ResourceNotFoundException(
                f"Schema {name} not found in collaboration {collab.id}",
                resource_id=name,
                resource_type="CONFIGURED_TABLE",
            )
        return table

    def _rule(self, collab: Collaboration, name: str, kind: str) -> TableRule:
        rule = rule_of(self._table(collab, name))
        if rule is None or rule.type != kind:
            raise ResourceNotFoundException(
                f"Schema {name} has no {kind} analysis rule",
                resource_id=name,
                resource_type="CONFIGURED_TABLE",
            )
        return rule

    # ---- shapes ------------------------------------------------------------------------

    def _summary(self, collab: Collaboration, table: Table) -> dict[str, Any]:
        rule = rule_of(table)
        return {
            "name": table.name,
            "type": "TABLE",
            "creatorAccountId": table.creatorAccountId or self._config.accountId,
            "createTime": self._world.created,
            "updateTime": self._world.created,
            "collaborationId": collab.id,
            "collaborationArn": collab.arn,
            "analysisRuleTypes": [rule.type] if rule else [],
            "analysisMethod": "DIRECT_QUERY",
        }

    def _schema(self, collab: Collaboration, table: Table) -> dict[str, Any]:
        rule = rule_of(table)
        types = self._column_types(table)
        status: dict[str, Any] = {"status": "READY", "analysisType": "DIRECT_ANALYSIS"}
        if rule is None:
            status = {
                "status": "NOT_READY",
                "analysisType": "DIRECT_ANALYSIS",
                "reasons": [
                    {
                        "code": "ANALYSIS_RULE_MISSING",
                        "message": "The table has no analysis rule (the local engine lets "
                        "such tables be queried freely; Clean Rooms does not)",
                    }
                ],
            }
        else:
            status["analysisRuleType"] = rule.type
            if rule.body.get("differentialPrivacy"):
                status["configurations"] = ["DIFFERENTIAL_PRIVACY"]
        return self._summary(collab, table) | {
            "columns": [{"name": name, "type": kind} for name, kind in types.items()],
            "partitionKeys": [],
            "description": "",
            "schemaStatusDetails": [status],
        }

    def _column_types(self, table: Table) -> dict[str, str]:
        allowed = table.columns
        if table.is_s3:
            return dict.fromkeys(allowed or [], "unknown")
        file: Path = self._config.resolve(table.path)
        stat = file.stat()
        key = (str(file), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            types = self._types.get(key)
        if types is None:
            with duckdb.connect(":memory:") as con:
                rows = con.execute(
                    f"DESCRIBE SELECT * FROM {reader_sql(table.file_format)}", {"path": str(file)}
                ).fetchall()
            types = {str(r[0]): str(r[1]).lower() for r in rows}
            with self._lock:
                self._types[key] = types
        if allowed:
            return {c: types.get(c, "unknown") for c in allowed}
        return dict(types)
