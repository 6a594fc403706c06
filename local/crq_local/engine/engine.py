"""The engine: the Clean Rooms operations, and each protected query's life on its own thread.

All shared state (queries, received requests, fault counters, pending events) is guarded by
one lock; a condition on it wakes `wait_until_idle`. The boto3 clients (aws.py) are made on
first use, from the environment: moto's `mock_aws` in-process, or AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import copy
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from crq.spec.apimodel import FieldError, check_shape, service_model

from . import billing, events, pages, results, rules
from .aws import Clients
from .config import EngineConfig, load_config
from .errors import (
    ConflictException,
    InternalServerException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
    ThrottlingException,
    UnknownOperationException,
    ValidationException,
    invalid_fields,
)
from .execution import Execution, QueryFailed, referenced_tables
from .faults import FaultCounters, FaultHintError, QueryFaults, Throttle, parse_hints
from .params import Bound, ParameterError, bind
from .query_plan import Planner
from .schemas import Schemas
from .tables import TableCache, TableReadError, TableSource, download
from .timings import Timings
from .world import Membership, World

if TYPE_CHECKING:
    from .server import EngineServer
    from .wsgi import WsgiApp

log = logging.getLogger("crq.engine")

ACTIVE = frozenset({"SUBMITTED", "STARTED"})  # what the concurrency quota counts
ENDED = frozenset({"SUCCESS", "FAILED", "CANCELLED", "TIMED_OUT"})
QUERY_CAP = 5  # concurrent SUBMITTED or STARTED queries per membership: the real, fixed quota
QUOTA_NAME = "Maximum number of concurrent protected queries per membership"
INTERNAL_ERROR = "INTERNAL_ERROR"
RESULT_WRITE_FAILED = "RESULT_WRITE_FAILED"
TIMED_OUT_CODE = "QUERY_TIMED_OUT"


@dataclass(frozen=True)
class Received:
    """A StartProtectedQuery request the engine accepted (a query was created for it)."""

    query_id: str
    membership_id: str
    request: dict[str, Any]
    time: datetime


@dataclass(eq=False)
class Query:
    id: str
    seq: int
    membership: Membership
    request: dict[str, Any]
    bound: Bound
    faults: QueryFaults
    receivers: list[str]
    create_time: datetime
    status: str = "SUBMITTED"
    created_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    statistics: dict[str, Any] | None = None
    cancelled: bool = False
    released: bool = False
    forgotten: bool = False
    wake: threading.Event = field(default_factory=threading.Event)
    execution: Execution = field(default_factory=Execution)


class Engine:
    """The local Clean Rooms engine. See the package docstring for how to use it."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        timings: Timings | None = None,
        members_dir: str | Path | None = None,
        aws_endpoint_url: str | None = None,
    ) -> None:
        """`members_dir` overrides the file's `membersDir`; `aws_endpoint_url`, when given, is
        where the engine's S3 and EventBridge clients go instead of what the environment says."""
        self.config = config
        self.timings = timings or Timings.fast()
        self.world = World(config)
        if members_dir is not None:
            self.members_dir = Path(members_dir)
        elif config.membersDir:
            self.members_dir = config.resolve(config.membersDir)
        else:
            self.members_dir = Path.cwd() / ".crq" / "engine" / "members"
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._queries: dict[str, Query] = {}
        self._received: list[Received] = []
        self._threads: set[threading.Thread] = set()
        self._seq = itertools.count(1)
        self._stopping = threading.Event()
        self._counters = FaultCounters()
        self._tables = TableCache()
        self._planner = Planner(config)  # issue 11: dialect + analysis rules, before execution
        self._throttle = Throttle(
            config.faults, config.limits.requestsPerSecond, config.limits.burst
        )
        self._clients = Clients(config.region, aws_endpoint_url)
        self._publisher = events.Publisher(self._clients, self._changed)
        self._operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "StartProtectedQuery": self._start_protected_query,
            "GetProtectedQuery": self._get_protected_query,
            "ListProtectedQueries": self._list_protected_queries,
            "UpdateProtectedQuery": self._update_protected_query,
            "GetMembership": self._get_membership,
            "ListMemberships": self._list_memberships,
            "GetAnalysisTemplate": self._get_analysis_template,
            "ListAnalysisTemplates": self._list_analysis_templates,
            "GetCollaborationAnalysisTemplate": self._get_collaboration_analysis_template,
            "ListMembers": self._list_members,
        }
        # issue 11: the tables' schemas and analysis rules (schemas.py).
        self._schemas = Schemas(self.world, config)
        self._operations |= {
            "GetSchema": self._schemas.get_schema,
            "ListSchemas": self._schemas.list_schemas,
            "BatchGetSchema": self._schemas.batch_get_schema,
            "GetSchemaAnalysisRule": self._schemas.get_schema_analysis_rule,
            "BatchGetSchemaAnalysisRule": self._schemas.batch_get_schema_analysis_rule,
        }

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Engine:
        return cls(load_config(path), **kwargs)

    # ---- front doors -------------------------------------------------------------------

    @property
    def operations(self) -> frozenset[str]:
        return frozenset(self._operations)

    def handle(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Answer one API request (`params`: every input member, from URI, query and body).
        Raises ApiError for an error answer."""
        handler = self._operations.get(operation)
        if handler is None:
            raise UnknownOperationException(
                f"The local Clean Rooms engine does not implement {operation}"
            )
        reason = self._throttle.check(operation)
        if reason:
            raise ThrottlingException(reason)
        input_shape = service_model().operation_model(operation).input_shape
        errors = check_shape(input_shape.name, params) if input_shape is not None else []
        if errors:
            raise invalid_fields(errors)
        return handler(params)

    @cached_property
    def wsgi_app(self) -> WsgiApp:
        """The WSGI application (the same one the server and the in-process handler run)."""
        from .wsgi import WsgiApp

        return WsgiApp(self)

    @contextmanager
    def installed(self) -> Iterator[Engine]:
        """Answer cleanrooms requests of every boto3/botocore session in this process."""
        from .inprocess import install_global, uninstall_global

        self._clients.open()
        install_global(self)
        try:
            yield self
        finally:
            uninstall_global(self)

    def install(self, session: Any) -> None:
        """Answer cleanrooms requests of one boto3 or botocore session (clients made after)."""
        from .inprocess import install_on

        self._clients.open()
        install_on(self, session)

    def uninstall(self, session: Any) -> None:
        from .inprocess import uninstall_from

        uninstall_from(self, session)

    def make_server(
        self, host: str = "127.0.0.1", port: int = 0, *, allow_remote: bool = False
    ) -> EngineServer:
        """A threaded HTTP server on (host, port); port 0 picks a free one. Call start()."""
        from .server import EngineServer

        server = EngineServer(self, host, port, allow_remote=allow_remote)
        self._clients.open()
        return server

    def serve(self, host: str = "127.0.0.1", port: int = 4599) -> None:
        """Serve HTTP until interrupted (KeyboardInterrupt), then shut down."""
        server = self.make_server(host, port)
        try:
            server.serve_forever()
        finally:
            server.shutdown()
            self.shutdown()

    # ---- test and demo controls ----------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def wait_until_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every query has ended and its events are sent. False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (
                any(q.status not in ENDED for q in self._queries.values())
                or self._publisher.pending
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def release(self, query_id: str | None = None) -> None:
        """Let held queries (`-- crq-fault: hold`) finish: one, or all when no id is given."""
        with self._lock:
            if query_id is None:
                targets = list(self._queries.values())
            else:
                targets = [q for q in (self._queries.get(query_id),) if q is not None]
            for q in targets:
                q.released = True
                q.wake.set()

    def forget(self, query_id: str) -> None:
        """Drop a query, as if Clean Rooms no longer knew it: its id now answers
        ResourceNotFoundException, and it sends no more events."""
        with self._changed:
            q = self._queries.pop(query_id, None)
            if q is not None:
                q.forgotten = True
                q.wake.set()
                q.execution.interrupt()
            self._changed.notify_all()

    def throttle(
        self, requests: int = 0, seconds: float = 0.0, operations: list[str] | None = None
    ) -> None:
        """Answer ThrottlingException to the next `requests` requests and/or for `seconds`."""
        self._throttle.add(requests, seconds, operations)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every query thread and the event publisher. Queries keep their last status."""
        self._stopping.set()
        with self._lock:
            threads = list(self._threads)
            for q in self._queries.values():
                q.wake.set()
                q.execution.interrupt()
        for t in threads:
            t.join(timeout)
        self._publisher.close()

    # ---- operations ----------------------------------------------------------------------

    def _membership(self, membership_id: str) -> Membership:
        m = self.world.caller_membership(membership_id)
        if m is None:
            raise ResourceNotFoundException(
                f"Membership {membership_id} not found",
                resource_id=membership_id,
                resource_type="MEMBERSHIP",
            )
        return m

    def _start_protected_query(self, params: dict[str, Any]) -> dict[str, Any]:
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
        with self._changed:
            active = sum(
                1
                for q in self._queries.values()
                if q.membership.id == membership.id and q.status in ACTIVE
            )
            if active >= QUERY_CAP:
                raise ServiceQuotaExceededException(
                    f"Membership {membership.id} already has {active} protected queries running",
                    quota_name=QUOTA_NAME,
                    quota_value=float(QUERY_CAP),
                )
            query = Query(
                id=str(uuid.uuid4()),
                seq=next(self._seq),
                membership=membership,
                request=copy.deepcopy(params),
                bound=bound,
                faults=self._counters.resolve(hints),
                receivers=receivers,
                create_time=datetime.now(UTC),
            )
            self._queries[query.id] = query
            self._received.append(
                Received(query.id, membership.id, copy.deepcopy(params), query.create_time)
            )
            self._emit(query, "SUBMITTED")
            thread = threading.Thread(
                target=self._run, args=(query,), name=f"crq-query-{query.id[:8]}", daemon=True
            )
            self._threads.add(thread)
            thread.start()
        log.info(
            "protected query submitted",
            extra={"queryId": query.id, "membershipId": membership.id},
        )
        if query.faults.lost_response:
            raise InternalServerException(
                "Internal failure (injected: the query was started, this answer was lost)"
            )
        return {"protectedQuery": self._shape(query)}

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

    def _query(self, params: dict[str, Any]) -> Query:
        membership = self._membership(params["membershipIdentifier"])
        query_id = params["protectedQueryIdentifier"]
        with self._lock:
            q = self._queries.get(query_id)
        if q is None or q.membership.id != membership.id:
            raise ResourceNotFoundException(
                f"Protected query {query_id} not found",
                resource_id=query_id,
                resource_type="PROTECTED_QUERY",
            )
        return q

    def _get_protected_query(self, params: dict[str, Any]) -> dict[str, Any]:
        q = self._query(params)
        with self._lock:
            return {"protectedQuery": self._shape(q)}

    def _list_protected_queries(self, params: dict[str, Any]) -> dict[str, Any]:
        membership = self._membership(params["membershipIdentifier"])
        after = pages.decode(params.get("nextToken"))
        with self._lock:
            found = sorted(
                (
                    q
                    for q in self._queries.values()
                    if q.membership.id == membership.id
                    and params.get("status") in (None, q.status)
                    and (after is None or q.seq < after)
                ),
                key=lambda q: q.seq,
                reverse=True,  # newest first
            )
            page = found[: params.get("maxResults", pages.DEFAULT_PAGE)]
            out: dict[str, Any] = {"protectedQueries": [self._summary(q) for q in page]}
        if len(found) > len(page):
            out["nextToken"] = pages.encode(page[-1].seq)
        return out

    def _update_protected_query(self, params: dict[str, Any]) -> dict[str, Any]:
        q = self._query(params)
        with self._changed:
            if q.status in ENDED:
                raise ConflictException(
                    f"Protected query {q.id} has already ended with status {q.status}",
                    resource_id=q.id,
                    resource_type="PROTECTED_QUERY",
                )
            if q.status in ACTIVE:
                q.cancelled = True
                self._set_status(q, "CANCELLING")
                q.wake.set()
                q.execution.interrupt()
            return {"protectedQuery": self._shape(q)}

    def _get_membership(self, params: dict[str, Any]) -> dict[str, Any]:
        m = self._membership(params["membershipIdentifier"])
        return {"membership": self.world.membership_shape(m)}

    def _list_memberships(self, params: dict[str, Any]) -> dict[str, Any]:
        found = [
            m for m in self.world.caller_memberships() if params.get("status") in (None, "ACTIVE")
        ]
        page, token = pages.page(found, params)
        out: dict[str, Any] = {
            "membershipSummaries": [self.world.membership_shape(m, summary=True) for m in page]
        }
        return out | ({"nextToken": token} if token else {})

    def _get_analysis_template(self, params: dict[str, Any]) -> dict[str, Any]:
        m = self._membership(params["membershipIdentifier"])
        template = m.collaboration.templates.get(params["analysisTemplateIdentifier"])
        if template is None or template.creator is not m:
            raise ResourceNotFoundException(
                f"Analysis template {params['analysisTemplateIdentifier']} not found",
                resource_id=params["analysisTemplateIdentifier"],
                resource_type="ANALYSIS_TEMPLATE",
            )
        return {"analysisTemplate": self.world.template_shape(template)}

    def _list_analysis_templates(self, params: dict[str, Any]) -> dict[str, Any]:
        m = self._membership(params["membershipIdentifier"])
        found = [t for t in m.collaboration.templates.values() if t.creator is m]
        page, token = pages.page(found, params)
        out: dict[str, Any] = {
            "analysisTemplateSummaries": [
                self.world.template_shape(t, kind="summary") for t in page
            ]
        }
        return out | ({"nextToken": token} if token else {})

    def _get_collaboration_analysis_template(self, params: dict[str, Any]) -> dict[str, Any]:
        collab = self.world.collaborations.get(params["collaborationIdentifier"])
        if collab is None or collab.membership_of(self.world.account_id) is None:
            raise ResourceNotFoundException(
                f"Collaboration {params['collaborationIdentifier']} not found",
                resource_id=params["collaborationIdentifier"],
                resource_type="COLLABORATION",
            )
        template = self.world.templates_by_arn.get(params["analysisTemplateArn"])
        if template is None or template.collaboration is not collab:
            raise ResourceNotFoundException(
                f"Analysis template {params['analysisTemplateArn']} not found",
                resource_id=params["analysisTemplateArn"],
                resource_type="ANALYSIS_TEMPLATE",
            )
        shape = self.world.template_shape(template, kind="collaboration")
        return {"collaborationAnalysisTemplate": shape}

    def _list_members(self, params: dict[str, Any]) -> dict[str, Any]:
        collab = self.world.collaborations.get(params["collaborationIdentifier"])
        if collab is None or collab.membership_of(self.world.account_id) is None:
            raise ResourceNotFoundException(
                f"Collaboration {params['collaborationIdentifier']} not found",
                resource_id=params["collaborationIdentifier"],
                resource_type="COLLABORATION",
            )
        page, token = pages.page(list(collab.memberships.values()), params)
        out: dict[str, Any] = {"memberSummaries": [self.world.member_shape(m) for m in page]}
        return out | ({"nextToken": token} if token else {})

    # ---- shapes ----------------------------------------------------------------------------

    def _shape(self, q: Query) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": q.id,
            "membershipId": q.membership.id,
            "membershipArn": q.membership.arn,
            "createTime": q.create_time,
            "sqlParameters": q.request["sqlParameters"],
            "status": q.status,
        }
        for key in ("resultConfiguration", "computeConfiguration"):
            if key in q.request:
                out[key] = q.request[key]
        for key, value in (
            ("statistics", q.statistics),
            ("result", q.result),
            ("error", q.error),
        ):
            if value is not None:
                out[key] = value
        return copy.deepcopy(out)

    def _summary(self, q: Query) -> dict[str, Any]:
        return {
            "id": q.id,
            "membershipId": q.membership.id,
            "membershipArn": q.membership.arn,
            "createTime": q.create_time,
            "status": q.status,
            "receiverConfigurations": [
                {
                    "analysisType": "DIRECT_ANALYSIS",
                    "configurationDetails": {
                        "directAnalysisConfigurationDetails": {
                            "receiverAccountIds": sorted(set(q.receivers))
                        }
                    },
                }
            ],
        }

    # ---- lifecycle -------------------------------------------------------------------------

    def _set_status(self, q: Query, status: str, **fields: Any) -> bool:
        """Move a query on (under the lock); False when it was forgotten or the engine stops."""
        with self._changed:
            if q.forgotten or self._stopping.is_set():
                return False
            q.status = status
            for key, value in fields.items():
                setattr(q, key, value)
            if status in ENDED:
                q.statistics = self._statistics(q)
            self._emit(q, status)
            self._changed.notify_all()
        return True

    def _statistics(self, q: Query) -> dict[str, Any]:
        now = time.monotonic()
        running = now - q.started_at if q.started_at is not None else 0.0
        crpus = billing.crpus(
            q.membership.collaboration.analytics_engine, q.request.get("computeConfiguration")
        )
        return billing.statistics(now - q.created_at, running, crpus)

    def _pause(self, q: Query, seconds: float) -> None:
        """Sleep up to `seconds`, waking early on cancel, forget or shutdown."""
        deadline = time.monotonic() + seconds
        while not self._interrupted(q):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if q.wake.wait(remaining):
                q.wake.clear()

    def _hold(self, q: Query) -> None:
        while not (self._interrupted(q) or q.released):
            if q.wake.wait(1.0):
                q.wake.clear()

    def _interrupted(self, q: Query) -> bool:
        return q.cancelled or q.forgotten or self._stopping.is_set()

    def _run(self, q: Query) -> None:
        try:
            self._lifecycle(q)
        except Exception as exc:  # a bug here must still end the query, not strand it
            log.exception("engine error", extra={"queryId": q.id})
            if q.cancelled:
                self._set_status(q, "CANCELLED")
            else:
                message = f"Internal engine error: {exc}"
                self._set_status(q, "FAILED", error=_error(INTERNAL_ERROR, message, True))
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _lifecycle(self, q: Query) -> None:
        self._pause(q, self.timings.submitted)
        if self._ended_early(q):
            return
        if not self._set_status(q, "STARTED", started_at=time.monotonic()):
            return
        rows: pa.Table | None = None
        failure: QueryFailed | None = None
        try:
            rows = self._execute(q)
        except QueryFailed as exc:
            failure = exc
        planned = self.timings.running + q.faults.slow + self.config.faults.slow
        timed_out = q.faults.timeout or planned > self.timings.timeout
        if q.faults.hold:
            self._hold(q)
        else:
            elapsed = time.monotonic() - (q.started_at or 0.0)
            self._pause(q, min(planned, self.timings.timeout) - elapsed)
        if self._ended_early(q):
            return
        if timed_out:
            message = f"The query ran longer than {self.timings.timeout:g} seconds"
            self._set_status(q, "TIMED_OUT", error=_error(TIMED_OUT_CODE, message, True))
        elif q.faults.fail is not None:
            fail = q.faults.fail
            self._set_status(q, "FAILED", error=_error(fail.code, fail.message, fail.retryable))
        elif failure is not None:
            retryable = failure.code == "TABLE_READ_FAILED"
            self._set_status(q, "FAILED", error=_error(failure.code, failure.message, retryable))
        else:
            assert rows is not None
            self._deliver(q, rows)

    def _ended_early(self, q: Query) -> bool:
        """Finish a cancelled query (CANCELLING -> CANCELLED); True if the run must stop."""
        if q.forgotten or self._stopping.is_set():
            return True
        if q.cancelled:
            self._stopping.wait(self.timings.cancelling)
            self._set_status(q, "CANCELLED")
            return True
        return False

    def _execute(self, q: Query) -> pa.Table:
        # issue 11: parse in the collaboration's dialect, enforce the analysis rules, transpile.
        sql_parameters = q.request["sqlParameters"]
        template = self.world.templates_by_arn.get(sql_parameters.get("analysisTemplateArn", ""))
        text = template.sql if template is not None else sql_parameters["queryString"]
        plan = self._planner.plan(q.membership, text, template, q.receivers)
        values = {k: v for k, v in q.bound.values.items() if k in plan.parameters}
        # Only the tables the SQL reads are fetched and registered: a small query must not pay
        # for the collaboration's big tables (DuckDB's own parser on the SQL it will run, and the
        # plan's tables; every table if the SQL does not parse there).
        names = referenced_tables(plan.sql)
        used = None if names is None else names | {t.lower() for t in plan.tables}
        with ExitStack() as stack:
            sources = []
            for table in q.membership.collaboration.tables:
                if used is not None and table.name.lower() not in used:
                    continue
                if table.is_s3:
                    try:
                        file = download(self._clients.get("s3"), table.path, stack)
                    except TableReadError as exc:
                        raise QueryFailed("TABLE_READ_FAILED", str(exc)) from exc
                    rows = None
                else:
                    file = self.config.resolve(table.path)
                    # Read once and kept in memory (Arrow) unless too big; a big Parquet file
                    # is scanned in place.
                    rows = self._tables.get(file, table.file_format)
                columns = tuple(table.columns) if table.columns else None
                sources.append(TableSource(table.name, file, table.file_format, columns, rows))
            return q.execution.run(sources, plan.sql, values)

    def _deliver(self, q: Query, rows: pa.Table) -> None:
        output = q.request["resultConfiguration"]["outputConfiguration"]
        try:
            if "s3" in output:
                written = results.write_s3(self._clients.get("s3"), rows, q.id, output["s3"])
                result: dict[str, Any] = {"s3": {"location": written.location}}
            elif "member" in output:
                account = output["member"]["accountId"]
                results.write_member(self.members_dir, account, q.id, rows)
                result = {"memberList": [{"accountId": account}]}
            else:
                result = {"distribute": self._distribute(q, rows, output["distribute"])}
        except Exception as exc:  # S3 refused (no bucket, access): the query fails, as on AWS
            log.warning("results not written", extra={"queryId": q.id, "error": str(exc)})
            message = f"Unable to write the query results: {exc}"
            self._set_status(q, "FAILED", error=_error(RESULT_WRITE_FAILED, message, False))
            return
        self._set_status(q, "SUCCESS", result={"output": result})
        log.info("protected query succeeded", extra={"queryId": q.id, "rows": rows.num_rows})

    def _distribute(self, q: Query, rows: pa.Table, distribute: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for location in distribute["locations"]:
            if "s3" in location:
                written = results.write_s3(self._clients.get("s3"), rows, q.id, location["s3"])
                out["s3"] = {"location": written.location}
            else:
                account = location["member"]["accountId"]
                results.write_member(self.members_dir, account, q.id, rows)
                out.setdefault("memberList", []).append({"accountId": account})
        return out

    # ---- events ------------------------------------------------------------------------

    def _emit(self, q: Query, status: str) -> None:
        """Queue the status event (under the lock, so events keep the order of changes)."""
        dropped = self.config.faults.dropEvents
        if (
            q.faults.events == "none"
            or dropped is True
            or (isinstance(dropped, list) and status in dropped)
        ):
            return
        entry = events.entry(q.membership.id, q.membership.arn, q.id, status)
        self._publisher.queue([entry] * (2 if q.faults.events == "duplicate" else 1))


def _error(code: str, message: str, retryable: bool) -> dict[str, Any]:
    # `retry` is in the current API (RetryInfo); older botocore models drop it when parsing.
    return {"code": code, "message": message, "retry": {"retryable": retryable}}
