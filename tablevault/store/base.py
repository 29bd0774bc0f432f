"""The interface every store implements.

The Vault, the CLI and the server speak only to :class:`Store`. A store owns atomicity: each
method that changes more than one thing does it in one transaction, so two processes racing
(a pause against a resume, two processes claiming one name) always leave a consistent state.
Stores translate their driver's errors into :class:`~tablevault.errors.StoreError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ..identity import is_alive
from .records import CodeItem, Outcome, ProcessRecord, Request, now


class Store(ABC):
    """Process runs, their code, control requests and appended records."""

    def __init__(self, stale_after: float = 30.0) -> None:
        self.stale_after = stale_after

    def run_is_alive(self, run: ProcessRecord, at: float | None = None) -> bool:
        """Whether the process behind a live-registered run still exists."""
        return run.live and is_alive(
            run.host, run.pid, run.create_time, run.heartbeat_at, self.stale_after, at
        )

    # Runs ------------------------------------------------------------------------------------

    @abstractmethod
    def register_run(self, run: ProcessRecord) -> ProcessRecord:
        """Store a new run under ``run.name``.

        A live holder of the name raises NameTakenError; a dead one is finalised as crashed
        first, its open requests expired, and its history kept.
        """

    @abstractmethod
    def rename_run(
        self,
        run_id: str,
        name: str,
        *,
        user_id: str | None = None,
        description: str | None = None,
    ) -> ProcessRecord:
        """Move a live run to another name, under the same rules as register_run."""

    @abstractmethod
    def heartbeat(
        self, run_id: str, checkpoint_count: int, last_checkpoint_at: float | None
    ) -> None:
        """Record that the run is alive, with its checkpoint progress."""

    @abstractmethod
    def set_run_status(self, run_id: str, status: str) -> None:
        """Set a live run's status to running or paused (an ended run is left as it is)."""

    @abstractmethod
    def end_run(
        self,
        run_id: str,
        status: str,
        *,
        exit_status: int | None = None,
        stopped_by: str | None = None,
    ) -> None:
        """Finalise a run; its open requests expire. A run already ended is left as it is."""

    @abstractmethod
    def get_run(
        self, *, name: str | None = None, run_id: str | None = None
    ) -> ProcessRecord | None:
        """One run by id, or the latest run registered under a name."""

    @abstractmethod
    def list_runs(self, *, live_only: bool = True) -> list[ProcessRecord]:
        """Runs, most recently started first; with live_only, those not ended."""

    # Code ------------------------------------------------------------------------------------

    @abstractmethod
    def start_code_item(
        self,
        run_id: str,
        kind: str,
        source: str,
        *,
        execution_count: int | None = None,
        cell_id: str | None = None,
        started_at: float | None = None,
    ) -> CodeItem:
        """Record code that starts running now; returns it with its id and index."""

    @abstractmethod
    def finish_code_item(self, item_id: int, outcome: Outcome) -> None:
        """Record how a code item ended."""

    @abstractmethod
    def add_thread_error(
        self, item_id: int, thread_name: str, error_type: str, message: str, traceback: str
    ) -> None:
        """Record an exception that ended a thread while the code item ran."""

    @abstractmethod
    def code_items(self, run_id: str, *, limit: int | None = None) -> list[CodeItem]:
        """The run's code items, newest first (all of them without a limit)."""

    @abstractmethod
    def code_item_count(self, run_id: str) -> int:
        """How many code items the run has."""

    # Requests --------------------------------------------------------------------------------

    @abstractmethod
    def create_request(
        self, target_name: str, action: str, requester: str, *, run_id: str | None = None
    ) -> Request:
        """Address stop, pause or resume to the live run of ``target_name``.

        The decision follows :func:`tablevault.store.rules.plan_request`. With ``run_id``, the
        request is refused (ProcessStateError) unless that run still holds the name.
        """

    @abstractmethod
    def open_requests(self, run_id: str) -> list[Request]:
        """Requests addressed to the run that are pending or acknowledged, oldest first."""

    @abstractmethod
    def acknowledge_requests(self, request_ids: list[int]) -> None:
        """Mark pending requests as seen by their target."""

    @abstractmethod
    def complete_request(self, request_id: int, *, run_status: str | None = None) -> bool:
        """Mark an open request done and, in the same transaction, set the run's status.

        Returns False, changing nothing, when the request is no longer open (cancelled by a
        later request).
        """

    @abstractmethod
    def recent_requests(self, run_id: str, *, limit: int = 20) -> list[Request]:
        """The run's requests in any state, newest first."""

    # Records ---------------------------------------------------------------------------------

    @abstractmethod
    def append_record(self, run_id: str, table: str, data_json: str) -> int:
        """Append one JSON document to a named table; returns its id."""

    @abstractmethod
    def query_records(self, table: str, *, process_name: str | None = None) -> list[dict[str, Any]]:
        """A table's documents in append order, optionally only those one process wrote."""

    # Search and maintenance ------------------------------------------------------------------

    @abstractmethod
    def search_processes(
        self,
        *,
        code_text: str | None = None,
        parent_code_text: str | None = None,
        description_text: str | None = None,
        names: list[str] | None = None,
    ) -> list[str]:
        """Names of processes matching every filter given, most recent first.

        ``code_text`` matches a run's code and errors, ``parent_code_text`` the code item of
        the parent that started it (any of the parent's code when that index is unknown),
        ``description_text`` the description; ``names`` keeps only those names.
        """

    @abstractmethod
    def current_operations(self) -> dict[str, list[dict[str, Any]]]:
        """Live runs with the code item each runs now, and open requests."""

    @abstractmethod
    def cleanup(self, interval: float, selected_ids: list[int] | None = None) -> dict[str, int]:
        """Finalise what is older than ``interval`` seconds and whose owner is dead.

        Running code items become ``lost``, runs ``crashed``, requests ``expired``.
        ``selected_ids`` limits it to code items and requests with those ids.
        """

    @abstractmethod
    def close(self) -> None:
        """Release connections held by this store object."""

    # Shared helpers --------------------------------------------------------------------------

    def dead_runs(
        self, runs: list[ProcessRecord], older_than: float | None = None
    ) -> list[ProcessRecord]:
        """The live-registered runs among ``runs`` whose process is gone."""
        at = now()
        return [
            run
            for run in runs
            if run.live
            and (older_than is None or run.started_at <= older_than)
            and not self.run_is_alive(run, at)
        ]
