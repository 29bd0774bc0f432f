"""The Vault: this process's registration in the store, and the checkpoint that obeys requests.

A process has at most one active vault. ``Vault(...)`` again with the same name (or none)
returns it; with another name it renames the registration, so a notebook that was registered
automatically and then names itself keeps the cells it already ran.

A process started by a registered one learns its parent from the ``TABLEVAULT_PARENT``
environment variable, which each registered process keeps pointing at itself and at the code
item it runs now; a ``fork``-ed child forgets its parent's vault.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from .client import VaultClient
from .config import TableVaultSettings
from .control import Controller
from .errors import (
    EXIT_STOPPED,
    InvalidInputError,
    NameTakenError,
    ProcessStateError,
    ScriptStopped,
    StopRequested,
    StoreError,
)
from .faults import FaultReporter
from .identity import ProcessIdentity, current_user, detect_kind, host_name
from .recording import ScriptRecorder
from .store import ProcessRecord, Store, open_store
from .store.records import now
from .validation import check_name, check_text, to_json

log = logging.getLogger(__name__)

PARENT_ENV = "TABLEVAULT_PARENT"
_DEFAULT_NAME_ATTEMPTS = 50


class _ActiveVault:
    """The one vault of this process (a fork-ed child starts without one)."""

    lock = threading.RLock()
    vault: Vault | None = None
    # A child fork-ed from a kernel inherits the kernel's shell but runs no cells of its own.
    forked = False


def active_vault() -> Vault | None:
    return _ActiveVault.vault


def checkpoint() -> None:
    """A safe point: act on a pending stop or pause. Does nothing where no vault is active."""
    vault = _ActiveVault.vault
    if vault is not None:
        vault.checkpoint_execution()


def _forget_in_child() -> None:
    vault = _ActiveVault.vault
    if vault is not None:
        vault._controller = None
    _ActiveVault.vault = None
    _ActiveVault.lock = threading.RLock()
    _ActiveVault.forked = True


os.register_at_fork(after_in_child=_forget_in_child)


def _parent_from_environment() -> dict[str, Any] | None:
    raw = os.environ.get(PARENT_ENV)
    if not raw:
        return None
    try:
        parent = json.loads(raw)
        return parent if isinstance(parent, dict) and parent.get("name") else None
    except ValueError:
        log.warning("ignoring %s: not the JSON tablevault writes (%r)", PARENT_ENV, raw[:80])
        return None


def _script_default_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return spec.name.removesuffix(".__main__")
    path = getattr(main, "__file__", None)
    return Path(path).name if path else f"python-{os.getpid()}"


def _settings_with(settings: TableVaultSettings | None, **overrides: Any) -> TableVaultSettings:
    settings = settings or TableVaultSettings()
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    return settings


class Vault(VaultClient):
    """Registers this process, records its code, and obeys requests at checkpoints.

    ``Vault()`` with no arguments registers the process under a default name: the script's
    file name, or the notebook's path. Without ``arango_url`` (or ``TABLEVAULT_ARANGO_URL``)
    the store is the SQLite file under ``TABLEVAULT_HOME``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Vault:
        with _ActiveVault.lock:
            if _ActiveVault.vault is not None:
                return _ActiveVault.vault
            return super().__new__(cls)

    def __init__(
        self,
        user_id: str | None = None,
        process_name: str | None = None,
        parent_process_name: str = "",
        parent_process_index: int | None = None,
        description: str = "",
        arango_url: str | None = None,
        arango_db: str | None = None,
        arango_username: str | None = None,
        arango_password: str | None = None,
        new_arango_db: bool = False,
        arango_root_username: str | None = None,
        arango_root_password: str | None = None,
        *,
        settings: TableVaultSettings | None = None,
        store: Store | None = None,
    ) -> None:
        with _ActiveVault.lock:
            if getattr(self, "_registered_once", False):
                self._adopt(process_name, user_id, description)
                return
            self._registered_once = True

        self.user_id = check_name(user_id, "user_id") if user_id is not None else current_user()
        self.description = check_text(description, "description") or ""
        explicit_name = check_name(process_name) if process_name is not None else None
        if parent_process_name:
            check_name(parent_process_name, "parent_process_name")
        if parent_process_index is not None and (
            isinstance(parent_process_index, bool)
            or not isinstance(parent_process_index, int)
            or parent_process_index < 0
        ):
            raise InvalidInputError("parent_process_index must be a whole number, 0 or more")
        settings = _settings_with(
            settings,
            arango_url=arango_url,
            arango_db=arango_db,
            arango_username=arango_username,
            arango_password=arango_password,
        )
        if store is None and settings.arango_url and new_arango_db:
            from .store.arango import ArangoStore

            store = ArangoStore.from_settings(
                settings,
                create_database=True,
                root_username=arango_root_username,
                root_password=arango_root_password,
            )

        self.kind = "script" if _ActiveVault.forked else detect_kind()
        self.faults = FaultReporter()
        self._pid = os.getpid()
        self._controller: Controller | None = None
        self._recorder: Any = None
        self._closed = False
        self.run: ProcessRecord | None = None
        self._registration = (explicit_name, parent_process_name, parent_process_index)
        self._next_registration_attempt: float | None = None
        try:
            super().__init__(
                store if store is not None else open_store(settings), settings=settings
            )
        except StoreError as exc:
            self.faults.failed("open the store", exc)
            self.settings, self.store = settings, _UnavailableStore(exc)
            self.requester = f"{self.user_id}@{host_name()}"
            self._retry_registration_later()
            _ActiveVault.vault = self
            return

        self._register(*self._registration)
        _ActiveVault.vault = self

    # Registration ------------------------------------------------------------------------------

    @property
    def process_name(self) -> str | None:
        return self.run.name if self.run else None

    def _register(
        self, explicit_name: str | None, parent_name: str, parent_index: int | None
    ) -> None:
        identity = ProcessIdentity.current()
        # What this process inherited, put back when it closes, so that a later registration in
        # the same process does not take the closed one for its parent.
        self._inherited_parent_env = os.environ.get(PARENT_ENV)
        parent = self._resolve_parent(parent_name, parent_index)
        run = ProcessRecord(
            run_id=uuid.uuid4().hex,
            name=explicit_name or self._default_name(),
            user_id=self.user_id,
            kind=self.kind,
            host=identity.host,
            pid=identity.pid,
            create_time=identity.create_time,
            started_at=now(),
            description=self.description,
            parent_name=parent.get("name"),
            parent_index=parent.get("index"),
            parent_run_id=parent.get("run_id"),
        )
        try:
            self.run = self._claim(run, defaulted=explicit_name is None)
        except StoreError as exc:
            self.faults.failed("register this process", exc)
            self._retry_registration_later()
            return
        self.requester = f"{self.user_id}@{identity.host} ({self.run.name})"
        self._start_recording()
        self._controller = Controller(
            self.store,
            self.run.run_id,
            poll_interval=self.settings.poll_interval,
            heartbeat_interval=self.settings.heartbeat_interval,
            faults=self.faults,
            stop_exception=StopRequested if self.kind == "notebook" else ScriptStopped,
        )
        self._controller.start()
        self.note_current_index(self.current_index)
        atexit.register(self._at_exit)
        _also_at_multiprocessing_exit(self._at_exit)

    def _retry_registration_later(self) -> None:
        """Let a checkpoint try again once a heartbeat interval has passed."""
        self._next_registration_attempt = time.monotonic() + self.settings.heartbeat_interval

    def _retry_registration(self) -> None:
        """Register now if the store is back; runs in a checkpoint, so in the user's thread."""
        due = self._next_registration_attempt
        if due is None or self._closed or time.monotonic() < due:
            return
        self._next_registration_attempt = None
        if isinstance(self.store, _UnavailableStore):
            try:
                self.store = open_store(self.settings)
            except StoreError as exc:
                self.faults.failed("open the store", exc)
                self._retry_registration_later()
                return
        self._register(*self._registration)
        if self.run is not None:
            self.faults.recovered()

    def _claim(self, run: ProcessRecord, *, defaulted: bool) -> ProcessRecord:
        """Register ``run``; a defaulted name that is taken gets a suffix instead of failing."""
        base = run.name
        for attempt in range(1, _DEFAULT_NAME_ATTEMPTS + 1):
            try:
                return self.store.register_run(run)
            except NameTakenError:
                if not defaulted or attempt == _DEFAULT_NAME_ATTEMPTS:
                    raise
                run.name = f"{base} [{attempt + 1}]"
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _default_name(self) -> str:
        if self.kind == "notebook":
            from .ipython.naming import default_notebook_name

            return default_notebook_name()
        return _script_default_name()

    def _resolve_parent(self, name: str, index: int | None) -> dict[str, Any]:
        inherited = _parent_from_environment() or {}
        if not name:
            return inherited
        if inherited.get("name") == name:
            return {**inherited, "index": index if index is not None else inherited["index"]}
        try:
            parent = self.store.get_run(name=name)
        except StoreError:
            parent = None
        return {
            "name": name,
            "index": index if index is not None else 0,
            "run_id": parent.run_id if parent else None,
        }

    def _start_recording(self) -> None:
        assert self.run is not None
        if self.kind == "notebook":
            from .ipython.recorder import start_cell_recording

            self._recorder = start_cell_recording(self)
        else:
            self._recorder = ScriptRecorder(
                self.store, self.run.run_id, self.faults, progress=self._checkpoint_progress
            )
            self._recorder.start()

    def _checkpoint_progress(self) -> tuple[int, float | None] | None:
        controller = self._controller
        if controller is None:
            return None
        return controller.checkpoint_count, controller.last_checkpoint_at

    @property
    def current_index(self) -> int | None:
        """The index of the code item this process runs now (None before the first)."""
        return self._recorder.current_index if self._recorder is not None else None

    def note_current_index(self, index: int | None) -> None:
        """Point TABLEVAULT_PARENT at this run and its current code item, for children."""
        if self.run is None:
            return
        os.environ[PARENT_ENV] = json.dumps(
            {"name": self.run.name, "run_id": self.run.run_id, "index": index}
        )

    def _adopt(self, name: str | None, user_id: str | None, description: str | None) -> None:
        """A second Vault(...) in this process: rename or describe the registration."""
        if self.run is None:
            return
        new_name = check_name(name) if name is not None else None
        description = check_text(description, "description") or None
        user = check_name(user_id, "user_id") if user_id is not None else None
        if new_name in (None, self.run.name) and description is None and user is None:
            return
        self.run = self.store.rename_run(
            self.run.run_id, new_name or self.run.name, user_id=user, description=description
        )
        self.user_id, self.description = self.run.user_id, self.run.description
        self.requester = f"{self.user_id}@{host_name()} ({self.run.name})"
        self.note_current_index(self.current_index)

    # The API ---------------------------------------------------------------------------------

    def checkpoint_execution(self) -> None:
        """A safe point: stop here, or pause until resumed, if another process asked."""
        controller = self._controller
        if controller is not None:
            controller.checkpoint()
        elif self._next_registration_attempt is not None:
            # Not registered yet because the store was unreachable: try again, now and then.
            self._retry_registration()

    def append_record(self, table: str, record: Any) -> int:
        """Append a JSON-serialisable record to ``table``; raises if it cannot be stored."""
        check_name(table, "table name")
        data = to_json(table, record)
        if self.run is None:
            raise StoreError("this process is not registered (the store was unavailable)")
        if self._closed:
            raise ProcessStateError(
                f"this vault ({self.run.name!r}) is closed; create a new Vault() to append"
            )
        return self.store.append_record(self.run.run_id, table, data)

    # The end ---------------------------------------------------------------------------------

    def close(self, status: str = "finished") -> None:
        """End this registration now (it also ends by itself when the process exits)."""
        with _ActiveVault.lock:
            self._end(status)
            self._closed = True
            atexit.unregister(self._at_exit)
            if _ActiveVault.vault is self:
                _ActiveVault.vault = None
            pointed_at = (_parent_from_environment() or {}).get("run_id")
            if self.run is not None and pointed_at == self.run.run_id:
                self._restore_parent_env()

    @property
    def closed(self) -> bool:
        """Whether close() ended this registration (a new Vault() starts another)."""
        return self._closed

    def _restore_parent_env(self) -> None:
        inherited = getattr(self, "_inherited_parent_env", None)
        if inherited is None:
            os.environ.pop(PARENT_ENV, None)
        else:
            os.environ[PARENT_ENV] = inherited

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _at_exit(self) -> None:
        if os.getpid() == self._pid:
            self._end("finished")

    def _end(self, status: str) -> None:
        controller, self._controller = self._controller, None
        stopped_by = controller.stopped_by if controller else None
        if controller is not None:
            controller.close()
        recorder, self._recorder = self._recorder, None
        if isinstance(recorder, ScriptRecorder):
            if stopped_by is not None:
                # A notebook shows who stopped the cell; a script says it on its way out.
                log.warning(
                    "tablevault: stopped at a checkpoint at the request of %s (exit status %d)",
                    stopped_by,
                    EXIT_STOPPED,
                )
            recorder.finish(stopped_by)
            recorder.uninstall()
            return
        if recorder is not None:
            recorder.close()
        if self.run is not None:
            with self.faults.guard("record the end of this process"):
                self.store.end_run(self.run.run_id, status, exit_status=0)


def _also_at_multiprocessing_exit(callback: Any) -> None:
    """Run ``callback`` at the end of a multiprocessing child too.

    A child started with the ``fork`` method leaves through ``os._exit``, so atexit handlers
    never run there; multiprocessing's own exit finalizers do.
    """
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is not None and multiprocessing.parent_process() is not None:
        from multiprocessing.util import Finalize

        Finalize(None, callback, exitpriority=0)


class _UnavailableStore:
    """Stands in for a store that could not be opened: every use raises why."""

    def __init__(self, cause: StoreError) -> None:
        self.cause = cause

    def __getattr__(self, name: str) -> Any:
        raise StoreError(f"the store is unavailable: {self.cause}") from self.cause
