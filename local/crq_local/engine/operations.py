"""The Clean Rooms operations: each one's request (every input member) to its answer.

Like a moto service's `responses`: it reads the request's members, applies the service's rules
(rules.py), asks the world (memberships, templates) or the runner (queries), and shapes the
answer. Errors are raised as the API's exceptions (errors.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from crq.spec.apimodel import FieldError

from . import pages, rules
from .errors import InternalServerException, ResourceNotFoundException, ValidationException
from .faults import FaultHintError, parse_hints
from .params import Bound, ParameterError, bind
from .queries import Query, shape, summary
from .runner import Runner
from .schemas import Schemas
from .world import Membership, World

log = logging.getLogger("crq.engine")

Operation = Callable[[dict[str, Any]], dict[str, Any]]


class Operations:
    """The operations the engine implements, by name (`table`)."""

    def __init__(self, world: World, runner: Runner, schemas: Schemas) -> None:
        self.world = world
        self.runner = runner
        self.table: dict[str, Operation] = {
            "StartProtectedQuery": self.start_protected_query,
            "GetProtectedQuery": self.get_protected_query,
            "ListProtectedQueries": self.list_protected_queries,
            "UpdateProtectedQuery": self.update_protected_query,
            "GetMembership": self.get_membership,
            "ListMemberships": self.list_memberships,
            "GetAnalysisTemplate": self.get_analysis_template,
            "ListAnalysisTemplates": self.list_analysis_templates,
            "GetCollaborationAnalysisTemplate": self.get_collaboration_analysis_template,
            "ListMembers": self.list_members,
            # issue 11: the tables' schemas and analysis rules (schemas.py).
            "GetSchema": schemas.get_schema,
            "ListSchemas": schemas.list_schemas,
            "BatchGetSchema": schemas.batch_get_schema,
            "GetSchemaAnalysisRule": schemas.get_schema_analysis_rule,
            "BatchGetSchemaAnalysisRule": schemas.batch_get_schema_analysis_rule,
        }

    # ---- protected queries ---------------------------------------------------------------

    def start_protected_query(self, params: dict[str, Any]) -> dict[str, Any]:
        membership = self._membership(params["membershipIdentifier"])
        rules.check_caller(membership)
        sql_parameters = params["sqlParameters"]
        rules.check_sql_parameters(sql_parameters)
        rules.check_compute(membership, params)
        receivers = rules.check_output(membership, params)
        bound, hint_sql = self._bind(membership, sql_parameters)
        try:
            hints = parse_hints(hint_sql)
        except FaultHintError as exc:
            raise rules.invalid("sqlParameters", str(exc)) from exc
        query = self.runner.submit(membership, params, bound, hints, receivers)
        log.info(
            "protected query submitted",
            extra={"queryId": query.id, "membershipId": membership.id},
        )
        if query.faults.lost_response:
            raise InternalServerException(
                "Internal failure (injected: the query was started, this answer was lost)"
            )
        with self.runner.lock:
            return {"protectedQuery": shape(query)}

    def get_protected_query(self, params: dict[str, Any]) -> dict[str, Any]:
        q = self._query(params)
        with self.runner.lock:
            return {"protectedQuery": shape(q)}

    def list_protected_queries(self, params: dict[str, Any]) -> dict[str, Any]:
        membership = self._membership(params["membershipIdentifier"])
        after = pages.decode(params.get("nextToken"))
        with self.runner.lock:
            found = sorted(
                (
                    q
                    for q in self.runner.queries_of(membership.id)
                    if params.get("status") in (None, q.status) and (after is None or q.seq < after)
                ),
                key=lambda q: q.seq,
                reverse=True,  # newest first
            )
            page = found[: params.get("maxResults", pages.DEFAULT_PAGE)]
            out: dict[str, Any] = {"protectedQueries": [summary(q) for q in page]}
        if len(found) > len(page):
            out["nextToken"] = pages.encode(page[-1].seq)
        return out

    def update_protected_query(self, params: dict[str, Any]) -> dict[str, Any]:
        q = self._query(params)
        with self.runner.lock:
            self.runner.cancel(q)
            return {"protectedQuery": shape(q)}

    # ---- memberships, members, templates -------------------------------------------------

    def get_membership(self, params: dict[str, Any]) -> dict[str, Any]:
        m = self._membership(params["membershipIdentifier"])
        return {"membership": self.world.membership_shape(m)}

    def list_memberships(self, params: dict[str, Any]) -> dict[str, Any]:
        found = [
            m for m in self.world.caller_memberships() if params.get("status") in (None, "ACTIVE")
        ]
        page, token = pages.page(found, params)
        out: dict[str, Any] = {
            "membershipSummaries": [self.world.membership_shape(m, summary=True) for m in page]
        }
        return out | ({"nextToken": token} if token else {})

    def get_analysis_template(self, params: dict[str, Any]) -> dict[str, Any]:
        m = self._membership(params["membershipIdentifier"])
        template = m.collaboration.templates.get(params["analysisTemplateIdentifier"])
        if template is None or template.creator is not m:
            raise _template_not_found(params["analysisTemplateIdentifier"])
        return {"analysisTemplate": self.world.template_shape(template)}

    def list_analysis_templates(self, params: dict[str, Any]) -> dict[str, Any]:
        m = self._membership(params["membershipIdentifier"])
        found = [t for t in m.collaboration.templates.values() if t.creator is m]
        page, token = pages.page(found, params)
        out: dict[str, Any] = {
            "analysisTemplateSummaries": [
                self.world.template_shape(t, kind="summary") for t in page
            ]
        }
        return out | ({"nextToken": token} if token else {})

    def get_collaboration_analysis_template(self, params: dict[str, Any]) -> dict[str, Any]:
        collab = self.world.member_collaboration(params["collaborationIdentifier"])
        template = self.world.templates_by_arn.get(params["analysisTemplateArn"])
        if template is None or template.collaboration is not collab:
            raise _template_not_found(params["analysisTemplateArn"])
        return {
            "collaborationAnalysisTemplate": self.world.template_shape(
                template, kind="collaboration"
            )
        }

    def list_members(self, params: dict[str, Any]) -> dict[str, Any]:
        collab = self.world.member_collaboration(params["collaborationIdentifier"])
        page, token = pages.page(list(collab.memberships.values()), params)
        out: dict[str, Any] = {"memberSummaries": [self.world.member_shape(m) for m in page]}
        return out | ({"nextToken": token} if token else {})

    # ---- lookups -------------------------------------------------------------------------

    def _membership(self, membership_id: str) -> Membership:
        m = self.world.caller_membership(membership_id)
        if m is None:
            raise ResourceNotFoundException(
                f"Membership {membership_id} not found",
                resource_id=membership_id,
                resource_type="MEMBERSHIP",
            )
        return m

    def _query(self, params: dict[str, Any]) -> Query:
        membership = self._membership(params["membershipIdentifier"])
        query_id = params["protectedQueryIdentifier"]
        q = self.runner.get(query_id)
        if q is None or q.membership.id != membership.id:
            raise ResourceNotFoundException(
                f"Protected query {query_id} not found",
                resource_id=query_id,
                resource_type="PROTECTED_QUERY",
            )
        return q

    def _bind(self, membership: Membership, sql_parameters: dict[str, Any]) -> tuple[Bound, str]:
        """The SQL to run with its bound values, and the text to read fault hints from."""
        if "queryString" in sql_parameters:
            text = sql_parameters["queryString"]
            return Bound(text, {}), text
        arn = sql_parameters["analysisTemplateArn"]
        template = self.world.templates_by_arn.get(arn)
        if template is None or template.collaboration is not membership.collaboration:
            raise rules.invalid(
                "sqlParameters.analysisTemplateArn",
                "no such analysis template in the membership's collaboration",
            )
        if template.format != "SQL":
            raise rules.invalid(
                "sqlParameters.analysisTemplateArn",
                f"a {template.format} analysis template cannot run as a protected query",
            )
        try:
            bound = bind(template.sql, template.parameters, sql_parameters.get("parameters", {}))
        except ParameterError as exc:
            raise ValidationException(
                f"Invalid analysis template parameters: {exc}",
                fields=[
                    FieldError(f"sqlParameters.parameters.{name}", message)
                    for name, message in exc.problems
                ],
            ) from exc
        return bound, template.sql


def _template_not_found(identifier: str) -> ResourceNotFoundException:
    """An analysis template, by id or ARN, that the caller may not see or that does not exist."""
    return ResourceNotFoundException(
        f"Analysis template {identifier} not found",
        resource_id=identifier,
        resource_type="ANALYSIS_TEMPLATE",
    )
