"""The records a store keeps: process runs, code items, control requests."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

OPEN_REQUEST_STATES = ("pending", "acknowledged")
ACTIONS = ("stop", "pause", "resume")
CODE_STATUSES = ("running", "ok", "error", "stopped", "interrupted", "lost")


def now() -> float:
    return time.time()


@dataclass
class ProcessRecord:
    """One run of a named process. A name reused after its holder died starts a new run."""

    run_id: str
    name: str
    user_id: str
    kind: str
    host: str
    pid: int
    create_time: float
    started_at: float
    status: str = "running"
    description: str = ""
    parent_name: str | None = None
    parent_index: int | None = None
    parent_run_id: str | None = None
    ended_at: float | None = None
    heartbeat_at: float | None = None
    last_checkpoint_at: float | None = None
    checkpoint_count: int = 0
    exit_status: int | None = None
    stopped_by: str | None = None

    @property
    def live(self) -> bool:
        """Registered as running or paused (whether it really still runs is `identity`'s)."""
        return self.ended_at is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CodeItem:
    """A notebook cell or a script, as it ran, with its outcome."""

    run_id: str
    index: int
    kind: str
    source: str
    started_at: float
    id: int = 0
    status: str = "running"
    execution_count: int | None = None
    cell_id: str | None = None
    duration: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    exit_code: int | None = None
    thread_errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Request:
    """A stop, pause or resume addressed by one process to a run of another."""

    id: int
    run_id: str
    target_name: str
    action: str
    requester: str
    created_at: float
    updated_at: float
    state: str = "pending"

    @property
    def open(self) -> bool:
        return self.state in OPEN_REQUEST_STATES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Outcome:
    """How a code item ended."""

    status: str
    duration: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    exit_code: int | None = None

    def __post_init__(self) -> None:
        if self.status not in CODE_STATUSES:
            raise ValueError(f"unknown code item status {self.status!r}")
