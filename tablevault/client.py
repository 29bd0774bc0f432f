"""Looking at and controlling processes without registering one.

:class:`VaultClient` is what the CLI and the server use; :class:`~tablevault.Vault` is a
client that also registers the process it runs in.
"""

from __future__ import annotations

from typing import Any

from .config import TableVaultSettings
from .errors import InvalidInputError, ProcessNotFoundError
from .identity import current_user, host_name
from .store import CodeItem, ProcessRecord, Request, Store, open_store
from .validation import check_ids, check_interval, check_name, check_text


class VaultClient:
    """Queries and control requests against a store, on behalf of ``requester``."""

    def __init__(
        self,
        store: Store | None = None,
        *,
        requester: str | None = None,
        settings: TableVaultSettings | None = None,
    ) -> None:
        self.settings = settings or TableVaultSettings()
        self.store = store if store is not None else open_store(self.settings)
        self.requester = requester or f"{current_user()}@{host_name()}"

    # Control -----------------------------------------------------------------------------------

    def stop_execution(self, process_name: str, *, run_id: str | None = None) -> Request:
        """Ask ``process_name`` to stop at its next checkpoint."""
        return self._request(process_name, "stop", run_id)

    def pause_execution(self, process_name: str, *, run_id: str | None = None) -> Request:
        """Ask ``process_name`` to pause at its next checkpoint until resumed or stopped."""
        return self._request(process_name, "pause", run_id)

    def resume_execution(self, process_name: str, *, run_id: str | None = None) -> Request:
        """Let a paused ``process_name`` go on (or withdraw a pause it has not reached)."""
        return self._request(process_name, "resume", run_id)

    def _request(self, process_name: str, action: str, run_id: str | None) -> Request:
        check_name(process_name)
        return self.store.create_request(process_name, action, self.requester, run_id=run_id)

    # Queries -----------------------------------------------------------------------------------

    def get_process(self, process_name: str) -> ProcessRecord:
        """The latest run registered under ``process_name``."""
        check_name(process_name)
        run = self.store.get_run(name=process_name)
        if run is None:
            raise ProcessNotFoundError(process_name)
        return run

    def is_alive(self, run: ProcessRecord) -> bool:
        """Whether the process behind a run still exists (False once it has ended)."""
        return self.store.run_is_alive(run)

    def list_processes(self, live_only: bool = True) -> list[ProcessRecord]:
        """Runs, most recently started first."""
        return self.store.list_runs(live_only=live_only)

    def query_process_code(self, process_name: str) -> list[CodeItem]:
        """The code the latest run of ``process_name`` recorded, in the order it ran."""
        run = self.get_process(process_name)
        return list(reversed(self.store.code_items(run.run_id)))

    def query_process_list(
        self,
        code_text: str | None = None,
        parent_code_text: str | None = None,
        description_text: str | None = None,
        filtered: list[str] | None = None,
    ) -> list[str]:
        """Names of processes matching every filter given (substring, case-insensitive)."""
        if filtered is not None:
            if isinstance(filtered, str) or not isinstance(filtered, list | tuple | set):
                raise InvalidInputError("filtered must be a list of process names")
            filtered = [check_name(name, "a name in filtered") for name in filtered]
        return self.store.search_processes(
            code_text=check_text(code_text, "code_text"),
            parent_code_text=check_text(parent_code_text, "parent_code_text"),
            description_text=check_text(description_text, "description_text"),
            names=filtered,
        )

    def query_record_list(
        self, table: str, process_name: str | None = None
    ) -> list[dict[str, Any]]:
        """The records appended to ``table``, in append order."""
        check_name(table, "table name")
        if process_name is not None:
            check_name(process_name)
        return self.store.query_records(table, process_name=process_name)

    def get_current_operations(self) -> dict[str, list[dict[str, Any]]]:
        """Live processes with the code item each runs now, and the open requests."""
        return self.store.current_operations()

    def vault_cleanup(
        self, interval: float = 60, selected_timestamps: list[int] | None = None
    ) -> dict[str, int]:
        """Finalise operations older than ``interval`` seconds whose owner is dead or silent."""
        seconds = check_interval(interval)
        ids = check_ids(selected_timestamps) if selected_timestamps is not None else None
        return self.store.cleanup(seconds, ids)
