"""The one store client behind the REST API, and the JSON it answers with.

Store calls block (SQLite waits on locks, ArangoDB on the network), so every one runs on a small
thread pool of its own: a slow store delays the tablevault routes, never the rest of the server,
and cannot use up the event loop's default executor that other extensions share.

The JSON follows ``docs/openapi.yaml``: each record is reduced to the fields named there, so a
field added to a record does not reach the API until the document names it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psutil

from ..client import VaultClient
from ..config import TableVaultSettings
from ..identity import current_user, host_name
from ..store import CodeItem, ProcessRecord, Request, open_store

T = TypeVar("T")

#: Threads that may wait on the store at once; further calls queue behind them.
STORE_THREADS = 4
#: How many code items and requests the detail of one process carries, newest first.
DETAIL_CODE_ITEMS = 50
DETAIL_REQUESTS = 20

_PROCESS_FIELDS = (
    "name",
    "run_id",
    "kind",
    "user_id",
    "host",
    "pid",
    "status",
    "description",
    "parent_name",
    "parent_index",
    "started_at",
    "ended_at",
    "heartbeat_at",
    "last_checkpoint_at",
    "checkpoint_count",
    "exit_status",
    "stopped_by",
)
_CODE_ITEM_FIELDS = (
    "id",
    "index",
    "kind",
    "source",
    "status",
    "execution_count",
    "cell_id",
    "started_at",
    "duration",
    "error_type",
    "error_message",
    "traceback",
    "exit_code",
)
_REQUEST_FIELDS = (
    "id",
    "run_id",
    "target_name",
    "action",
    "state",
    "requester",
    "created_at",
    "updated_at",
)


def _pick(record: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    return {field: record.get(field) for field in fields}


def request_json(request: Request | dict[str, Any]) -> dict[str, Any]:
    return _pick(request if isinstance(request, dict) else request.to_dict(), _REQUEST_FIELDS)


def code_item_json(item: CodeItem | dict[str, Any]) -> dict[str, Any]:
    return _pick(item if isinstance(item, dict) else item.to_dict(), _CODE_ITEM_FIELDS)


class ResourceSampler:
    """CPU and resident memory of processes on this host, through psutil.

    psutil measures CPU use between two calls on the same ``Process`` object, so the objects are
    kept from one listing to the next; the first look at a process therefore knows its memory but
    not yet its CPU share (None).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: dict[tuple[int, float], psutil.Process] = {}

    def sample(self, run: ProcessRecord) -> tuple[float | None, int | None]:
        """``(cpu_percent, memory_rss)`` of a live run on this host, else ``(None, None)``."""
        key = (run.pid, run.create_time)
        with self._lock:
            proc = self._processes.get(key)
            first_look = proc is None
            if proc is None:
                try:
                    proc = psutil.Process(run.pid)
                except psutil.Error:
                    return None, None
                self._processes[key] = proc
        try:
            with proc.oneshot():
                cpu = proc.cpu_percent(interval=None)
                rss = proc.memory_info().rss
        except psutil.Error:
            with self._lock:
                self._processes.pop(key, None)
            return None, None
        return (None if first_look else cpu), rss

    def forget_ended(self) -> None:
        """Drop the objects of processes that have exited (or whose pid was reused)."""
        with self._lock:
            for key, proc in list(self._processes.items()):
                if not proc.is_running():
                    del self._processes[key]


class ProcessService:
    """Everything the handlers ask of the store, as JSON-ready dictionaries.

    The store is opened on first use and, if that fails (ArangoDB not up yet, an unwritable
    ``TABLEVAULT_HOME``), again on each later call until it succeeds; each failure reaches the
    caller as a :class:`~tablevault.errors.StoreError`.
    """

    def __init__(
        self, settings: TableVaultSettings, *, log: logging.Logger, requester: str | None = None
    ) -> None:
        self.settings = settings
        self.log = log
        self.requester = requester or f"{current_user()}@{host_name()} (jupyter-server)"
        self.resources = ResourceSampler()
        self._client: VaultClient | None = None
        self._client_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="tablevault-store")

    # Plumbing --------------------------------------------------------------------------------

    def client(self) -> VaultClient:
        """The one client, opened on first use (blocking: call it on the store threads)."""
        with self._client_lock:
            if self._client is None:
                store = open_store(self.settings)
                self._client = VaultClient(store, requester=self.requester, settings=self.settings)
                self.log.info("tablevault | store opened: %s", self.describe_store())
            return self._client

    def describe_store(self) -> str:
        if self.settings.arango_url:
            return f"ArangoDB {self.settings.arango_db} at {self.settings.arango_url}"
        return f"SQLite {self.settings.sqlite_path}"

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call on the store threads; the event loop goes on meanwhile."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))

    def close(self) -> None:
        """Stop taking calls and close the store (calls already running finish first)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.store.close()

    # Queries (blocking) ----------------------------------------------------------------------

    def list_processes(self, *, include_ended: bool) -> list[dict[str, Any]]:
        """Runs, most recently started first, each with its request and current item."""
        client = self.client()
        runs = client.list_processes(live_only=not include_ended)
        operations = client.get_current_operations()

        running = {p["run_id"]: p.get("current_item") for p in operations["processes"]}
        pending: dict[str, dict[str, Any]] = {}
        for request in operations["requests"]:
            pending.setdefault(request["run_id"], request)
        processes = [
            self._process_json(client, run, pending.get(run.run_id), running.get(run.run_id))
            for run in runs
        ]
        self.resources.forget_ended()
        return processes

    def process_detail(self, name: str) -> dict[str, Any]:
        """The latest run under ``name`` with its recent code items and requests."""
        client = self.client()
        run = client.get_process(name)
        items = client.store.code_items(run.run_id, limit=DETAIL_CODE_ITEMS)
        requests = client.store.recent_requests(run.run_id, limit=DETAIL_REQUESTS)
        open_requests = client.store.open_requests(run.run_id) if run.live else []

        current = next((item for item in items if item.status == "running"), None)
        detail = self._process_json(
            client, run, open_requests[0] if open_requests else None, current
        )
        detail["code_items"] = [code_item_json(item) for item in items]
        detail["requests"] = [request_json(request) for request in requests]
        return detail

    # Control (blocking) ----------------------------------------------------------------------

    def request_action(self, name: str, action: str, run_id: str | None) -> dict[str, Any]:
        """Store a stop, pause or resume request for the process ``name``."""
        client = self.client()
        send = {
            "pause": client.pause_execution,
            "resume": client.resume_execution,
            "stop": client.stop_execution,
        }[action]
        return request_json(send(name, run_id=run_id))

    # JSON ------------------------------------------------------------------------------------

    def _process_json(
        self,
        client: VaultClient,
        run: ProcessRecord,
        pending: Request | dict[str, Any] | None,
        current: CodeItem | dict[str, Any] | None,
    ) -> dict[str, Any]:
        """One run as the API's Process.

        A run still registered as live whose process is gone is shown as the store will record
        it once someone finalises it: crashed, with nothing running and nothing pending.
        """
        alive = client.is_alive(run)
        process = _pick(run.to_dict(), _PROCESS_FIELDS)
        process["alive"] = alive
        if run.live and not alive:
            process["status"] = "crashed"
            pending = current = None
        process["pending_request"] = request_json(pending) if pending else None
        process["current_item"] = code_item_json(current) if current else None

        cpu, rss = None, None
        if alive and run.host == host_name():
            cpu, rss = self.resources.sample(run)
        process["cpu_percent"] = cpu
        process["memory_rss"] = rss
        return process
