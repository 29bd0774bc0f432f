"""One warning when the store starts failing, one note when it is back.

Recording and control run inside the user's loop. A store that fails there must not raise into
the user's code nor flood their output: the first failure is logged as a warning, the others
are counted at debug level, and recovery is announced once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import StoreError

log = logging.getLogger("tablevault")


class FaultReporter:
    """Shared by everything one process does with the store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failing = False

    def failed(self, what: str, exc: BaseException) -> None:
        with self._lock:
            first = not self.failing
            self.failing = True
        if first:
            log.warning(
                "tablevault could not %s (%s). Your code goes on; recording and stop/pause/"
                "resume are unavailable until the store is back.",
                what,
                exc,
            )
        else:
            log.debug("tablevault could not %s (%s)", what, exc)

    def recovered(self) -> None:
        with self._lock:
            was_failing, self.failing = self.failing, False
        if was_failing:
            log.warning("tablevault: the store is reachable again; recording and control resume")

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Run a store call whose failure must not reach the user's code."""
        try:
            yield
        except StoreError as exc:
            self.failed(what, exc)
        else:
            self.recovered()
