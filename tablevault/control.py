"""Acting on stop, pause and resume requests at checkpoints.

A background thread (the watcher) heartbeats and looks for requests addressed to this run; when
it finds one it raises a flag. A checkpoint with the flag down costs an attribute read and a
counter increment, nothing more. With the flag up, the checkpoint reads the open requests and
acts: a stop raises :class:`~tablevault.errors.StopRequested` (its script form exits), a pause
marks the run paused and blocks the calling thread until a resume or a stop arrives.

The store is the only channel: resume works from any machine that reaches it, and no signal is
ever sent. When the store fails, the watcher logs one warning, control stays unavailable, and
checkpoints keep returning at once; a second message says when it is back.
"""

from __future__ import annotations

import logging
import threading
import time

from .errors import StopRequested, StoreError
from .faults import FaultReporter
from .store import Request, Store

log = logging.getLogger(__name__)

# While paused, the waiting thread wakes this often even without news, to re-read the store in
# case the watcher itself is stuck on a slow store.
_PAUSED_RECHECK = 2.0


class Controller:
    """The control side of one registered run."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        *,
        poll_interval: float,
        heartbeat_interval: float,
        faults: FaultReporter,
        stop_exception: type[StopRequested] = StopRequested,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.stop_exception = stop_exception
        self.checkpoint_count = 0
        self.last_checkpoint_at: float | None = None
        self.stopped_by: str | None = None
        self.request_waiting = False
        self._news = threading.Event()
        self._closing = threading.Event()
        self.faults = faults
        self._watcher: threading.Thread | None = None

    # The watcher -----------------------------------------------------------------------------

    def start(self) -> None:
        self._watcher = threading.Thread(target=self._watch, name="tablevault-watcher", daemon=True)
        self._watcher.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop the watcher and write the final checkpoint count, which heartbeats lag."""
        self._closing.set()
        self._news.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout)
        self._watcher = None
        try:
            self.store.heartbeat(self.run_id, self.checkpoint_count, self.last_checkpoint_at)
        except StoreError as exc:
            self.faults.failed("write the final checkpoint count", exc)

    def _watch(self) -> None:
        next_heartbeat = 0.0
        while not self._closing.is_set():
            try:
                if time.monotonic() >= next_heartbeat:
                    self.store.heartbeat(
                        self.run_id, self.checkpoint_count, self.last_checkpoint_at
                    )
                    next_heartbeat = time.monotonic() + self.heartbeat_interval
                self.poll_once()
            except StoreError as exc:
                self.faults.failed("heartbeat or look for requests", exc)
            except Exception:
                # The watcher must outlive any surprise, or control would silently stop.
                log.exception("tablevault watcher: unexpected error; it keeps running")
            self._closing.wait(self.poll_interval)

    def poll_once(self) -> list[Request]:
        """Look for requests addressed to this run; acknowledge and flag new ones."""
        requests = self.store.open_requests(self.run_id)
        self.faults.recovered()
        if requests:
            fresh = [request.id for request in requests if request.state == "pending"]
            if fresh:
                self.store.acknowledge_requests(fresh)
            self.request_waiting = True
            self._news.set()
        return requests

    # Checkpoints -----------------------------------------------------------------------------

    def checkpoint(self) -> None:
        self.checkpoint_count += 1
        self.last_checkpoint_at = time.time()
        if self.request_waiting:
            self._act()

    def _act(self) -> None:
        self.request_waiting = False
        try:
            requests = self.store.open_requests(self.run_id)
        except StoreError as exc:
            self.faults.failed("act on a request", exc)
            return
        for request in requests:
            if request.action == "stop":
                self._stop(request)
        for request in requests:
            if request.action == "pause" and self._complete(request, "paused"):
                self._wait_while_paused()
                return
            if request.action == "resume":
                self._complete(request, "running")

    def _complete(self, request: Request, run_status: str) -> bool:
        try:
            return self.store.complete_request(request.id, run_status=run_status)
        except StoreError as exc:
            self.faults.failed("act on a request", exc)
            return False

    def _stop(self, request: Request) -> None:
        self._complete(request, "running")
        self.stopped_by = request.requester
        log.info("tablevault: stopping at the request of %s", request.requester)
        raise self.stop_exception(request.requester, request.id)

    def _wait_while_paused(self) -> None:
        log.info("tablevault: paused; waiting for resume or stop")
        self._news.clear()
        try:
            while not self._closing.is_set():
                self._news.wait(_PAUSED_RECHECK)
                self._news.clear()
                if self._resumed_or_stopped():
                    return
        except KeyboardInterrupt:
            self._mark_running_after_interrupt()
            raise

    def _resumed_or_stopped(self) -> bool:
        try:
            requests = self.store.open_requests(self.run_id)
        except StoreError as exc:
            self.faults.failed("act on a request", exc)
            return False
        for request in requests:
            if request.action == "stop":
                self._stop(request)
        for request in requests:
            if request.action == "resume" and self._complete(request, "running"):
                log.info("tablevault: resumed at the request of %s", request.requester)
                return True
        return False

    def _mark_running_after_interrupt(self) -> None:
        try:
            self.store.set_run_status(self.run_id, "running")
        except StoreError as exc:
            self.faults.failed("act on a request", exc)
