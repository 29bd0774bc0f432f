"""Recording a plain script: its source once, and how it ended.

The outcome is learnt from hooks that chain to whatever was installed before, so the user's
own excepthook, thread excepthook and exit status are left as they were:

- ``sys.excepthook``: an uncaught exception (the run ``failed``; KeyboardInterrupt makes it
  ``terminated``).
- ``threading.excepthook``: an exception that ended a thread, kept with the script's record.
- ``sys.exit``: its status, since an uncaught SystemExit reaches no hook (see Caveats in the
  README: ``raise SystemExit(n)`` written out is recorded with an unknown exit status).
- SIGTERM, when no handler was set: the run is recorded ``terminated``, then the signal is
  delivered again with its default action, so the process dies exactly as it would have.
- exit (the Vault's atexit handler): whatever happened, the final status is written once. A
  process killed by SIGKILL writes nothing; the liveness check finds it later (``crashed``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

import psutil

from .errors import EXIT_STOPPED
from .faults import FaultReporter
from .store import Outcome, Store


def main_source() -> str:
    """The source ``__main__`` runs: the file, a ``-m`` module, or ``python -c``'s text."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    path = getattr(spec, "origin", None) or getattr(main, "__file__", None)
    if path and os.path.isfile(path):
        try:
            with open(path, encoding="utf-8", errors="replace") as source:
                return source.read()
        except OSError as exc:
            return f"# tablevault could not read {path}: {exc}\n"
    try:
        argv = psutil.Process().cmdline()
    except psutil.Error:
        argv = []
    if "-c" in argv[:-1]:
        return argv[argv.index("-c") + 1]
    return f"# source not available: {' '.join(argv) or sys.executable}\n"


def _formatted(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> str:
    return "".join(traceback.format_exception(exc_type, exc, tb))


class ScriptRecorder:
    """Records one script run, from the Vault's creation to the interpreter's exit."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        faults: FaultReporter,
        progress: Callable[[], tuple[int, float | None] | None] = lambda: None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.faults = faults
        # The checkpoint count and time, which reach the store with heartbeats, so lag; the
        # end writes them, whichever way the end comes (a SIGTERM skips the Vault's own exit).
        self.progress = progress
        self.item_id: int | None = None
        self.started = time.monotonic()
        self.pid = os.getpid()
        self.exit_code: Any = None
        self.exit_called = False
        self.failure: Outcome | None = None
        self.stopped_by: str | None = None
        self.ended = False
        self._previous_excepthook = sys.excepthook
        self._previous_thread_excepthook = threading.excepthook
        self._previous_exit = sys.exit
        self._sigterm_installed = False

    @property
    def current_index(self) -> int:
        return 0

    def start(self) -> None:
        with self.faults.guard("record the script's source"):
            item = self.store.start_code_item(self.run_id, "script", main_source())
            self.item_id = item.id
        sys.excepthook = self._excepthook
        threading.excepthook = self._thread_excepthook
        sys.exit = self._exit
        self._install_sigterm()

    def uninstall(self) -> None:
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._previous_excepthook
        if threading.excepthook == self._thread_excepthook:
            threading.excepthook = self._previous_thread_excepthook
        if sys.exit == self._exit:
            sys.exit = self._previous_exit
        if self._sigterm_installed and signal.getsignal(signal.SIGTERM) == self._sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    # Hooks -----------------------------------------------------------------------------------

    def _excepthook(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        status = "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "error"
        self.failure = Outcome(
            status,
            error_type=exc_type.__name__,
            error_message=str(exc),
            traceback=_formatted(exc_type, exc, tb),
        )
        self._previous_excepthook(exc_type, exc, tb)

    def _thread_excepthook(self, args: threading.ExceptHookArgs) -> None:
        if self.item_id is not None and args.exc_value is not None:
            with self.faults.guard("record a thread's exception"):
                self.store.add_thread_error(
                    self.item_id,
                    args.thread.name if args.thread else "unknown thread",
                    args.exc_type.__name__,
                    str(args.exc_value),
                    _formatted(args.exc_type, args.exc_value, args.exc_traceback),
                )
        self._previous_thread_excepthook(args)

    def _exit(self, status: Any = None) -> None:
        self.exit_called, self.exit_code = True, status
        self._previous_exit(status)

    def _install_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, self._sigterm)
        self._sigterm_installed = True

    def _sigterm(self, signum: int, frame: object) -> None:
        self._write_end(
            Outcome(
                "interrupted", error_type="SIGTERM", error_message="terminated by signal SIGTERM"
            ),
            "terminated",
            exit_status=128 + signum,
        )
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    # The end ---------------------------------------------------------------------------------

    def finish(self, stopped_by: str | None = None) -> None:
        """Write the final status, once, in the process that started (the Vault's atexit)."""
        if os.getpid() != self.pid:
            return
        self.stopped_by = stopped_by
        if self.stopped_by is not None:
            self._write_end(Outcome("stopped"), "stopped", exit_status=EXIT_STOPPED)
        elif self.failure is not None and self.failure.status == "interrupted":
            # Python ends on an uncaught KeyboardInterrupt by killing itself with SIGINT.
            self._write_end(self.failure, "terminated", exit_status=128 + signal.SIGINT)
        elif self.failure is not None:
            self._write_end(self.failure, "failed", exit_status=1)
        elif self.exit_called:
            self._end_with_exit_status(self.exit_code)
        else:
            self._write_end(Outcome("ok"), "finished", exit_status=0)

    def _end_with_exit_status(self, code: Any) -> None:
        if code is None or code == 0:
            self._write_end(Outcome("ok"), "finished", exit_status=0)
            return
        # sys.exit("message") prints the message and exits with status 1.
        status = code if isinstance(code, int) else 1
        self._write_end(
            Outcome("error", error_type="SystemExit", error_message=f"exit status {code}"),
            "failed",
            exit_status=status,
        )

    def _write_end(self, outcome: Outcome, run_status: str, *, exit_status: int) -> None:
        if self.ended:
            return
        self.ended = True
        outcome.duration = time.monotonic() - self.started
        outcome.exit_code = exit_status
        with self.faults.guard("record how the script ended"):
            progress = self.progress()
            if progress is not None:
                self.store.heartbeat(self.run_id, *progress)
            if self.item_id is not None:
                self.store.finish_code_item(self.item_id, outcome)
            self.store.end_run(
                self.run_id, run_status, exit_status=exit_status, stopped_by=self.stopped_by
            )
