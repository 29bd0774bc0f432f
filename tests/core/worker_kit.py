"""What the worker scripts of the core tests share: markers for the test, and waiting for it.

A worker is a real Python process started by a test (see conftest.py). It learns its process
name and its folder from the environment the test gives it, leaves marker files there for the
test to read, and waits for the markers the test leaves there in turn. A marker is written
whole or not at all, so the test never reads half of one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

NAME = os.environ["TV_WORKER_NAME"]
FOLDER = Path(os.environ["TV_WORKER_FOLDER"])


def mark(marker: str, text: object = "") -> None:
    """Leave ``text`` in the marker file ``marker`` for the test to read."""
    partial = FOLDER / f".{marker}.{os.getpid()}.partial"
    partial.write_text(str(text))
    os.replace(partial, FOLDER / marker)


def wait_for_marker(marker: str, timeout: float = 60.0) -> None:
    """Block until the test leaves the marker ``marker``, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (FOLDER / marker).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test never left the marker {marker!r}")
        time.sleep(0.01)
