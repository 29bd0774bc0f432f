"""Recording every cell an IPython shell runs.

A :class:`CellRecorder` listens to IPython's ``pre_run_cell`` and ``post_run_cell`` events.
For each cell it keeps the source exactly as typed (magics and ``!`` lines included), the
execution count, the front end's cell id when one was sent, when the cell started, how long
it ran, and how it ended:

- ``ok``; a cell with ``!command`` lines also keeps the last command's exit status, which
  IPython leaves in ``_exit_code``;
- ``error``, with the exception's type, message and traceback (IPython's own frames left
  out). ``SystemExit`` keeps its status as the exit code;
- ``stopped`` when another process asked for a stop at one of the cell's checkpoints. The
  cell shows one line naming who asked, and no traceback;
- ``interrupted`` by a KeyboardInterrupt (the kernel's interrupt button), including one that
  ends a pause.

Some cells end in an exception that IPython shows but does not report: ``%%time`` over a cell
that raises, ``%run`` of a script that raises. IPython passes every exception it shows through
``showtraceback``, which keeps it in ``sys.last_value``; a cell that IPython calls a success
but during which ``sys.last_value`` changed is recorded with that exception. This patches no
IPython method, so it cannot clash with another extension that wraps one, and it sees an
exception whichever magic showed it.

The cell's own thread never waits for the store. The hooks only note what happened and hand
it to one writer thread, which stores it in order, a moment (50 ms) later so that the writes
of a quick cell come after the kernel's reply; a slow or locked store delays the records,
never the cells. Each cell's index is therefore assigned here, at its start, so that a child
process started by the cell learns it at once (see ``Vault.note_current_index``); the writer
corrects the numbering from the store's answer if the two ever differ.

Store failures go through the vault's :class:`~tablevault.faults.FaultReporter`: one warning,
then silence until the store is back. A failure of the recorder itself is logged with its
traceback at debug level and announced once as a warning. Neither reaches the cell: its
output and its outcome stay what they would have been without tablevault.

Caveats:

- A cell that creates the ``Vault`` records itself from that moment: its start time is when
  the vault was created, not when the cell started. A vault created outside any cell (a
  startup file, a thread between cells) records from the next cell on.
- Silent executions (``silent=True``, which front ends use for their own introspection) are
  not recorded; IPython fires no event for them.
- A cell that closes the vault (``vault.close()``, ``%unload_ext tablevault``) is recorded as
  ``ok`` at that moment, since its end is never seen.
- The exit status kept for a ``!command`` cell is whatever ``_exit_code`` holds when the cell
  ends; a command in a branch that did not run leaves the previous command's status there.
- The one-line stop message needs IPython's custom-exception slot; if another extension holds
  it, a stop shows a full traceback instead (and is still recorded as ``stopped``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import re
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from subprocess import CalledProcessError
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import StopRequested
from ..store import Outcome

if TYPE_CHECKING:
    from ..vault import Vault

log = logging.getLogger(__name__)

# Records waiting for the writer beyond this many are dropped (with one warning): a store that
# hangs must not make the kernel hold every cell it runs in memory.
_MAX_PENDING = 10_000
# How long closing waits for the writer to store what is queued.
_DRAIN_TIMEOUT = 5.0
# How long the writer lets a cell run, and its reply go out, before writing (seconds).
_SETTLE = 0.05
# A line running a shell command whose status IPython keeps: `!cmd`, not `!!cmd` (output only).
_SHELL_ESCAPE = re.compile(r"^[ \t]*![^!]", re.MULTILINE)


def _package_folder(name: str) -> str | None:
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    return os.path.dirname(path) + os.sep if path else None


# Frames of these packages are IPython's machinery around the user's code, not the user's code.
_MACHINERY = tuple(
    folder for folder in map(_package_folder, ("IPython", "ipykernel", "asyncio")) if folder
)


def _traceback_text(exc: BaseException, *, ran: bool) -> str:
    """The exception as Python would print it, without IPython's own frames.

    Code that never ran (a SyntaxError) has no frames of its own: all of them are IPython
    compiling the cell.
    """
    summary = traceback.TracebackException.from_exception(exc)
    user_frames = [
        frame for frame in summary.stack if ran and not frame.filename.startswith(_MACHINERY)
    ]
    summary.stack = traceback.StackSummary.from_list(user_frames)
    return "".join(summary.format())


def _exit_code_of(exc: BaseException) -> int | None:
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None or isinstance(code, int):
            return code or 0
        return 1  # sys.exit("message") exits with status 1
    if isinstance(exc, CalledProcessError):  # %%bash and friends raise it on failure
        return exc.returncode
    return None


def _failure(exc: BaseException, duration: float, *, ran: bool = True) -> Outcome:
    if isinstance(exc, StopRequested):
        status = "stopped"
    elif isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
        status = "interrupted"
    else:
        status = "error"
    return Outcome(
        status,
        duration=duration,
        error_type=type(exc).__name__,
        error_message=str(exc),
        traceback=_traceback_text(exc, ran=ran),
        exit_code=_exit_code_of(exc),
    )


def _last_shown() -> BaseException | None:
    """The exception IPython showed last (it keeps it there for ``%debug`` and ``%tb``)."""
    # Read from the module's dict: a getattr that misses costs microseconds on every cell.
    return sys.__dict__.get("last_value")


def _show_stop(
    shell: Any,
    etype: type[BaseException],
    value: BaseException,
    tb: TracebackType | None,
    tb_offset: int | None = None,
) -> None:
    """IPython's custom-exception handler for a stop: one line, no traceback."""
    shell._showtraceback(etype, value, [f"{etype.__name__}: {value}"])


@dataclass(eq=False)
class _Cell:
    """A cell being recorded. ``info`` is IPython's ExecutionInfo, to match the cell's end."""

    index: int
    sequence: int
    source: str
    execution_count: int | None
    cell_id: str | None
    started_at: float
    clock: float
    info: Any
    shown_before: BaseException | None
    item_id: int | None = None


class CellRecorder:
    """Records the cells of one IPython shell into one registered run."""

    def __init__(self, vault: Vault, shell: Any) -> None:
        assert vault.run is not None, "a recorder needs a registered run"
        self._vault = vault
        self._shell = shell
        self._store = vault.store
        self._run_id = vault.run.run_id
        self._faults = vault.faults
        self._running: list[_Cell] = []
        # Index of a cell = sequence number here + the offset last learnt from the store.
        self._sequence = 0
        self._offset = 0
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=self._write_loop, name="tablevault-cell-recorder", daemon=True
        )
        self._closing = threading.Event()
        self._hooked = False
        self._stop_handler_installed = False
        self._own_failures = 0
        self._dropped = 0

    @property
    def current_index(self) -> int | None:
        """The index of the cell running now, or None between cells."""
        running = self._running
        return running[-1].index if running else None

    # Installing and removing ---------------------------------------------------------------

    def start(self) -> None:
        """Record the cell running now, if any, then every cell that follows."""
        if self._shell is None:
            log.debug("tablevault: no IPython shell runs here; no cell to record")
            return
        self._writer.start()
        try:
            self._adopt_running_cell()
            self._shell.events.register("pre_run_cell", self._pre_run_cell)
            self._shell.events.register("post_run_cell", self._post_run_cell)
            self._hooked = True
            self._install_stop_handler()
        except Exception:
            self._failed_internally("start recording cells")

    def close(self) -> None:
        """Stop recording: remove the hooks and store what is still queued."""
        if self._hooked:
            self._hooked = False
            for event, callback in (
                ("pre_run_cell", self._pre_run_cell),
                ("post_run_cell", self._post_run_cell),
            ):
                try:
                    self._shell.events.unregister(event, callback)
                except ValueError:
                    log.debug("tablevault: the %s hook was already removed", event)
            self._remove_stop_handler()
        # The cell that closes recording never reaches post_run_cell while we listen.
        while self._running:
            cell = self._running.pop()
            self._enqueue(("finish", cell, Outcome("ok", time.perf_counter() - cell.clock)))
        if self._writer.is_alive():
            self._closing.set()
            self._queue.put(None)
            self._writer.join(_DRAIN_TIMEOUT)
            if self._writer.is_alive():
                log.warning("tablevault: the store is slow; the last cell records may not be saved")

    def _install_stop_handler(self) -> None:
        if self._shell.custom_exceptions:
            log.debug("tablevault: custom exceptions are taken; a stop shows a traceback")
            return
        self._shell.set_custom_exc((StopRequested,), _show_stop)
        self._stop_handler_installed = True

    def _remove_stop_handler(self) -> None:
        if self._stop_handler_installed and self._shell.custom_exceptions == (StopRequested,):
            self._shell.set_custom_exc((), None)
        self._stop_handler_installed = False

    # The hooks -----------------------------------------------------------------------------

    def _adopt_running_cell(self) -> None:
        """Record the cell that is creating the vault: its pre_run_cell event has passed."""
        result = getattr(getattr(self._shell, "displayhook", None), "exec_result", None)
        info = getattr(result, "info", None)
        if info is None or info.silent:
            return
        count = result.execution_count if info.store_history else None
        self._begin(info, count, started_at=time.time())

    def _pre_run_cell(self, info: Any) -> None:
        try:
            # IPython has already counted this cell when it announces it.
            count = self._shell.execution_count - 1 if info.store_history else None
            self._begin(info, count, started_at=time.time())
        except Exception:
            self._failed_internally("record the start of a cell")

    def _begin(self, info: Any, execution_count: int | None, *, started_at: float) -> None:
        source = info.raw_cell
        if not source or source.isspace():
            return
        cell = _Cell(
            index=self._sequence + self._offset,
            sequence=self._sequence,
            source=source,
            execution_count=execution_count,
            cell_id=getattr(info, "cell_id", None),
            started_at=started_at,
            clock=time.perf_counter(),
            info=info,
            shown_before=_last_shown(),
        )
        self._sequence += 1
        self._running.append(cell)
        self._enqueue(("start", cell))
        self._vault.note_current_index(cell.index)

    def _post_run_cell(self, result: Any) -> None:
        try:
            cell = self._pop_cell(result)
            if cell is not None:
                self._enqueue(("finish", cell, self._outcome(cell, result)))
        except Exception:
            self._failed_internally("record the end of a cell")

    def _pop_cell(self, result: Any) -> _Cell | None:
        """The running cell ``result`` ends, taken off the stack; None if it is not ours.

        An empty cell ends without having started (IPython announces no start for it), and
        a cell that started before recording did is not ours either.
        """
        running = self._running
        if not running:
            return None
        if result is None:  # the cell's coroutine raised; the newest cell is the one
            return running.pop()
        for position in range(len(running) - 1, -1, -1):
            if running[position].info is result.info:
                cell = running[position]
                del running[position:]
                return cell
        return None

    def _outcome(self, cell: _Cell, result: Any) -> Outcome:
        duration = time.perf_counter() - cell.clock
        if result is None:
            exc = sys.exc_info()[1]
            if exc is None:
                return Outcome(
                    "error",
                    duration,
                    error_type="unknown",
                    error_message="IPython gave no result for this cell",
                )
        elif result.error_before_exec is not None:
            return _failure(result.error_before_exec, duration, ran=False)
        else:
            exc = result.error_in_exec
        if exc is None:
            shown = _last_shown()
            if shown is not None and shown is not cell.shown_before:
                exc = shown
        if exc is not None:
            return _failure(exc, duration)
        return Outcome("ok", duration, exit_code=self._shell_exit_code(cell))

    def _shell_exit_code(self, cell: _Cell) -> int | None:
        if "!" not in cell.source or not _SHELL_ESCAPE.search(cell.source):
            return None
        code = self._shell.user_ns.get("_exit_code")
        return code if isinstance(code, int) else None

    # The writer ----------------------------------------------------------------------------

    def _enqueue(self, task: tuple[Any, ...]) -> None:
        if self._queue.qsize() >= _MAX_PENDING:
            self._dropped += 1
            if self._dropped == 1:
                log.warning("tablevault: the store is not keeping up; cells go unrecorded")
            return
        self._queue.put(task)

    def _write_loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            # Writing at once would compete for the CPU and the GIL with the cell that just
            # started or ended, and with the kernel sending its reply. Waiting a moment moves
            # the writes of a quick cell after its reply, and writes a burst of cells together.
            self._closing.wait(_SETTLE)
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for task in batch:
                if task is None:
                    return
                self._write(task)

    def _write(self, task: tuple[Any, ...]) -> None:
        try:
            if task[0] == "start":
                self._store_start(task[1])
            else:
                self._store_finish(task[1], task[2])
        except Exception:
            self._failed_internally("store a cell record")

    def _store_start(self, cell: _Cell) -> None:
        with self._faults.guard("record a cell"):
            item = self._store.start_code_item(
                self._run_id,
                "cell",
                cell.source,
                execution_count=cell.execution_count,
                cell_id=cell.cell_id,
                started_at=cell.started_at,
            )
            cell.item_id = item.id
            if item.index != cell.index:
                log.debug("tablevault: cell %d stored as %d", cell.index, item.index)
            self._offset = item.index - cell.sequence

    def _store_finish(self, cell: _Cell, outcome: Outcome) -> None:
        cell.shown_before = None  # let go of the exception and its frames
        if cell.item_id is None:  # its start could not be stored
            return
        with self._faults.guard("record how a cell ended"):
            self._store.finish_code_item(cell.item_id, outcome)

    def _failed_internally(self, what: str) -> None:
        self._own_failures += 1
        if self._own_failures == 1:
            log.warning(
                "tablevault could not %s (%s); your cells are not affected, but "
                "some may go unrecorded",
                what,
                sys.exc_info()[1],
            )
        log.debug("tablevault could not %s", what, exc_info=True)


def start_cell_recording(vault: Vault) -> CellRecorder:
    """Record every cell of the running IPython shell into ``vault``'s run, from now on."""
    from IPython import get_ipython

    recorder = CellRecorder(vault, get_ipython())
    recorder.start()
    return recorder
