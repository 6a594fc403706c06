"""The start function's use case: a spec uploaded or deleted, or a schedule naming a spec.

An upload or a deletion first syncs the spec's schedule (crq.schedule_sync). A deletion stops
there, and so does an upload the sync says not to run now (a scheduled spec without
`runOnUpload`); any other upload, and a schedule firing, starts a run (crq.starter).

Most uploads want no schedule. For them the sync does not read the key's spec-state record:
the run's creating write checks, in the same transaction, that the record holds no schedule to
remove (or unfinished event); only if it does is the schedule synced first, as for any other
upload, and the run started after it. The spec version the sync read is the one started.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crq.errors import ScheduleRecordFound
from crq.ports import Collaborators
from crq.schedule_state import ScheduleDeps
from crq.schedule_sync import SyncOutcome, sync_schedule
from crq.starter import start_run
from crq.triggers import SpecDeleted, SpecUploaded, StartTrigger


def sync_and_start(
    trigger: StartTrigger | SpecDeleted,
    deps: Collaborators,
    schedule_deps: Callable[[], ScheduleDeps],
) -> dict[str, Any]:
    """What the start function returns for `trigger` (and logs).

    `schedule_deps` builds the schedule use case's collaborators when a trigger needs them."""
    synced = None
    if isinstance(trigger, SpecUploaded | SpecDeleted):  # the spec's schedule first
        synced = sync_schedule(trigger, schedule_deps(), defer_unscheduled=True)
    if synced is not None and (isinstance(trigger, SpecDeleted) or not synced.run_now):
        return synced.as_dict()
    assert not isinstance(trigger, SpecDeleted)  # a deletion always stops above
    # The sync read the uploaded version already: the start takes it (one read per upload).
    # An unscheduled upload's spec-state record is checked by the run's creating write; only
    # if it holds a schedule (or an unfinished event) is the schedule synced first, as before.
    try:
        started = start_run(
            trigger,
            deps,
            synced.spec_object if synced else None,
            synced.unchecked_record if synced else None,
        )
    except ScheduleRecordFound:
        assert isinstance(trigger, SpecUploaded)
        synced = sync_schedule(trigger, schedule_deps())
        if not synced.run_now:
            return synced.as_dict()
        started = start_run(trigger, deps, synced.spec_object)
    result = started.as_dict()
    if synced is not None and synced.outcome not in (SyncOutcome.IGNORED, SyncOutcome.UNSCHEDULED):
        result["schedule"] = str(synced.outcome)
    return result
