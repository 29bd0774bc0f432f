"""What a new control request does, decided the same way by every store.

A store reads the target run and its open requests inside one transaction, asks
:func:`plan_request` what to do, and carries the plan out in that same transaction. Keeping the
decision here, apart from the storage, is what makes SQLite and ArangoDB behave alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import InvalidInputError, ProcessStateError
from .records import ACTIONS, ProcessRecord, Request


@dataclass
class RequestPlan:
    """``existing`` to return as it is, or a new request to insert in ``new_state``."""

    existing: Request | None = None
    new_state: str = "pending"
    cancel: list[Request] = field(default_factory=list)
    set_status: str | None = None


def plan_request(
    run: ProcessRecord, open_requests: list[Request], action: str, *, alive: bool
) -> RequestPlan:
    """Decide what ``action`` does to ``run``, whose open requests are ``open_requests``.

    Raises ProcessStateError when the action makes no sense in the run's state. A run that is
    registered live but whose process is gone must be finalised by the caller before this.
    """
    if action not in ACTIONS:
        raise InvalidInputError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if not run.live:
        raise ProcessStateError(f"process {run.name!r} is not running (it {run.status})")
    if not alive:
        raise ProcessStateError(
            f"process {run.name!r} (pid {run.pid} on {run.host}) is no longer alive"
        )

    by_action = {request.action: request for request in open_requests}
    if action == "stop":
        if "stop" in by_action:
            return RequestPlan(existing=by_action["stop"])
        return RequestPlan()

    if action == "pause":
        if "stop" in by_action:
            raise ProcessStateError(f"process {run.name!r} is already asked to stop")
        if run.status == "paused" and "resume" not in by_action:
            raise ProcessStateError(f"process {run.name!r} is already paused")
        if "pause" in by_action:
            return RequestPlan(existing=by_action["pause"])
        if "resume" in by_action:
            # Paused with a resume on its way: the pause wins and the resume is withdrawn, so
            # the process stays paused rather than waking and pausing again.
            return RequestPlan(new_state="done", cancel=[by_action["resume"]])
        return RequestPlan()

    if "resume" in by_action:
        return RequestPlan(existing=by_action["resume"])
    if "pause" in by_action and run.status != "paused":
        # The pause has not reached a checkpoint yet: withdrawing it is the whole resume.
        return RequestPlan(new_state="done", cancel=[by_action["pause"]])
    if run.status != "paused":
        raise ProcessStateError(f"process {run.name!r} is not paused (it is {run.status})")
    return RequestPlan()


@dataclass
class RequestDecision:
    """What a store does, inside its transaction, with a request to ``run``.

    ``crash_first``: finalise the run as crashed (its process is gone) before anything else.
    Then either ``refusal`` is returned out of the transaction and raised after it commits
    (raising inside would undo the crash), or ``plan`` is carried out.
    """

    crash_first: bool = False
    refusal: ProcessStateError | None = None
    plan: RequestPlan | None = None


def decide_request(
    run: ProcessRecord,
    open_requests: Callable[[], list[Request]],
    action: str,
    *,
    alive: bool,
    expected_run_id: str | None = None,
) -> RequestDecision:
    """Check the caller's run id and the run's liveness, then plan ``action``.

    Errors that leave nothing to record are raised; a refusal that follows finding the
    process dead is returned, so the store can commit the crash before raising it.
    """
    if expected_run_id is not None and run.run_id != expected_run_id:
        raise ProcessStateError(
            f"process {run.name!r} is now another run ({run.run_id}), "
            f"not {expected_run_id}; refresh and try again"
        )
    crash_first = run.live and not alive
    if crash_first:
        run.status = "crashed"
        run.ended_at = run.heartbeat_at or run.started_at
    try:
        plan = plan_request(run, open_requests(), action, alive=alive)
    except ProcessStateError as refusal:
        if crash_first:
            return RequestDecision(crash_first=True, refusal=refusal)
        raise
    return RequestDecision(crash_first=crash_first, plan=plan)
