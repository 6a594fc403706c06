"""The protected queries in memory, each one run on its own thread.

The runner keeps every query under one lock; a condition on it wakes `wait_until_idle`. A
query's thread moves it through its statuses (SUBMITTED -> STARTED -> an end), runs its SQL,
writes its results and queues a status event for every change.
"""

from __future__ import annotations

import copy
import itertools
import logging
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from . import billing, results, status_events
from .aws import Clients
from .config import EngineConfig
from .errors import ConflictException, ServiceQuotaExceededException
from .execution import QueryFailed, referenced_tables
from .faults import FaultCounters, HintLine
from .params import Bound
from .queries import ACTIVE, ENDED, Query, Received, query_error
from .query_plan import Planner
from .tables import TableCache, TableReadError, TableSource, download
from .timings import Timings
from .world import Membership, World

log = logging.getLogger("crq.engine")

QUERY_CAP = 5  # concurrent SUBMITTED or STARTED queries per membership: the real, fixed quota
QUOTA_NAME = "Maximum number of concurrent protected queries per membership"
INTERNAL_ERROR = "INTERNAL_ERROR"
RESULT_WRITE_FAILED = "RESULT_WRITE_FAILED"
TIMED_OUT_CODE = "QUERY_TIMED_OUT"


class Runner:
    """Every query the engine knows, and the threads that run them."""

    def __init__(
        self,
        config: EngineConfig,
        world: World,
        timings: Timings,
        members_dir: Path,
        clients: Clients,
    ) -> None:
        self._config = config
        self._world = world
        self._timings = timings
        self._members_dir = members_dir
        self._clients = clients
        self.lock = threading.RLock()  # hold it to read a consistent view of queries
        self._changed = threading.Condition(self.lock)
        self._queries: dict[str, Query] = {}
        self._received: list[Received] = []
        self._threads: set[threading.Thread] = set()
        self._seq = itertools.count(1)
        self._stopping = threading.Event()
        self._counters = FaultCounters()
        self._tables = TableCache()
        self._planner = Planner(config)  # issue 11: dialect + analysis rules, before execution
        self._publisher = status_events.Publisher(clients, self._changed)

    # ---- what the operations ask ---------------------------------------------------------

    def submit(
        self,
        membership: Membership,
        request: dict[str, Any],
        bound: Bound,
        hints: list[HintLine],
        receivers: list[str],
    ) -> Query:
        """Create a query and start its thread; ServiceQuotaExceededException at the cap."""
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
                request=copy.deepcopy(request),
                bound=bound,
                faults=self._counters.resolve(hints),
                receivers=receivers,
                create_time=datetime.now(UTC),
            )
            self._queries[query.id] = query
            self._received.append(
                Received(query.id, membership.id, copy.deepcopy(request), query.create_time)
            )
            self._emit(query, "SUBMITTED")
            thread = threading.Thread(
                target=self._run, args=(query,), name=f"crq-query-{query.id[:8]}", daemon=True
            )
            self._threads.add(thread)
            thread.start()
        return query

    def get(self, query_id: str) -> Query | None:
        with self.lock:
            return self._queries.get(query_id)

    def queries_of(self, membership_id: str) -> list[Query]:
        """The membership's queries (hold `lock` while reading them)."""
        with self.lock:
            return [q for q in self._queries.values() if q.membership.id == membership_id]

    def cancel(self, q: Query) -> None:
        """Start cancelling (CANCELLING); ConflictException once the query has ended."""
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

    @property
    def received(self) -> list[Received]:
        with self.lock:
            return list(self._received)

    # ---- what tests and tools ask (crq_local.engine.testing) -----------------------------

    def wait_until_idle(self, timeout: float) -> bool:
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
        with self.lock:
            if query_id is None:
                targets = list(self._queries.values())
            else:
                targets = [q for q in (self._queries.get(query_id),) if q is not None]
            for q in targets:
                q.released = True
                q.wake.set()

    def forget(self, query_id: str) -> None:
        """Drop a query: its id is unknown from now on, and it sends no more events."""
        with self._changed:
            q = self._queries.pop(query_id, None)
            if q is not None:
                q.forgotten = True
                q.wake.set()
                q.execution.interrupt()
            self._changed.notify_all()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every query thread and the event publisher. Queries keep their last status."""
        self._stopping.set()
        with self.lock:
            threads = list(self._threads)
            for q in self._queries.values():
                q.wake.set()
                q.execution.interrupt()
        for t in threads:
            t.join(timeout)
        self._publisher.close()

    # ---- a query's thread ----------------------------------------------------------------

    def _run(self, q: Query) -> None:
        try:
            self._lifecycle(q)
        except Exception as exc:  # a bug here must still end the query, not strand it
            log.exception("engine error", extra={"queryId": q.id})
            if q.cancelled:
                self._set_status(q, "CANCELLED")
            else:
                message = f"Internal engine error: {exc}"
                self._set_status(q, "FAILED", error=query_error(INTERNAL_ERROR, message, True))
        finally:
            with self.lock:
                self._threads.discard(threading.current_thread())

    def _lifecycle(self, q: Query) -> None:
        self._pause(q, self._timings.submitted)
        if self._ended_early(q):
            return
        if not self._set_status(q, "STARTED", started_at=time.monotonic()):
            self._ended_early(q)  # cancelled between the check above and now
            return
        rows: pa.Table | None = None
        failure: QueryFailed | None = None
        try:
            rows = self.execute(q)
        except QueryFailed as exc:
            failure = exc
        planned = self._timings.running + q.faults.slow + self._config.faults.slow
        timed_out = q.faults.timeout or planned > self._timings.timeout
        if q.faults.hold:
            self._hold(q)
        else:
            elapsed = time.monotonic() - (q.started_at or 0.0)
            self._pause(q, min(planned, self._timings.timeout) - elapsed)
        if self._ended_early(q):
            return
        if timed_out:
            message = f"The query ran longer than {self._timings.timeout:g} seconds"
            self._set_status(q, "TIMED_OUT", error=query_error(TIMED_OUT_CODE, message, True))
        elif q.faults.fail is not None:
            fail = q.faults.fail
            self._set_status(
                q, "FAILED", error=query_error(fail.code, fail.message, fail.retryable)
            )
        elif failure is not None:
            retryable = failure.code == "TABLE_READ_FAILED"
            self._set_status(
                q, "FAILED", error=query_error(failure.code, failure.message, retryable)
            )
        else:
            assert rows is not None
            self._deliver(q, rows)

    def _set_status(self, q: Query, status: str, **fields: Any) -> bool:
        """Move a query on (under the lock); False when it was forgotten, the engine stops, or a
        cancel came first (then only CANCELLED, or an end, may follow)."""
        with self._changed:
            if q.forgotten or self._stopping.is_set():
                return False
            if q.cancelled and status not in ENDED and status != "CANCELLING":
                return False  # a cancel landed first: the query only goes on to CANCELLED
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

    def _ended_early(self, q: Query) -> bool:
        """Finish a cancelled query (CANCELLING -> CANCELLED); True if the run must stop."""
        if q.forgotten or self._stopping.is_set():
            return True
        if q.cancelled:
            self._stopping.wait(self._timings.cancelling)
            self._set_status(q, "CANCELLED")
            return True
        return False

    def execute(self, q: Query) -> pa.Table:
        """Run the query's SQL over the tables it reads (the runner's thread calls it)."""
        # issue 11: parse in the collaboration's dialect, enforce the analysis rules, transpile.
        sql_parameters = q.request["sqlParameters"]
        template = self._world.templates_by_arn.get(sql_parameters.get("analysisTemplateArn", ""))
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
                    file = self._config.resolve(table.path)
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
                results.write_member(self._members_dir, account, q.id, rows)
                result = {"memberList": [{"accountId": account}]}
            else:
                result = {"distribute": self._distribute(q, rows, output["distribute"])}
        except Exception as exc:  # S3 refused (no bucket, access): the query fails, as on AWS
            log.warning("results not written", extra={"queryId": q.id, "error": str(exc)})
            message = f"Unable to write the query results: {exc}"
            self._set_status(q, "FAILED", error=query_error(RESULT_WRITE_FAILED, message, False))
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
                results.write_member(self._members_dir, account, q.id, rows)
                out.setdefault("memberList", []).append({"accountId": account})
        return out

    def _emit(self, q: Query, status: str) -> None:
        """Queue the status event (under the lock, so events keep the order of changes)."""
        dropped = self._config.faults.dropEvents
        if (
            q.faults.events == "none"
            or dropped is True
            or (isinstance(dropped, list) and status in dropped)
        ):
            return
        entry = status_events.entry(q.membership.id, q.membership.arn, q.id, status)
        self._publisher.queue([entry] * (2 if q.faults.events == "duplicate" else 1))
