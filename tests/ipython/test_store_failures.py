"""A store that fails or stalls never changes a cell: same output, same outcome, no delay.

Two real troubles, caused from outside the kernel:

- the kernel may no longer write files (its file-size limit set to 0 with prlimit, as a full
  disk or an exhausted quota would do): every write fails at once;
- another process holds the SQLite file's write lock for longer than the busy timeout.

Permissions cannot be used: the tests may run as root, whom chmod does not stop.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from tablevault import VaultClient

from .conftest import Kernel, KernelFactory, Reply, cells, finished_cells, live_run, wait_for

# Cells whose output and outcome must not depend on the store.
CELLS = (
    "print(sum(range(10)))",
    "6 * 7",
    "1/0",
    "for i in range(3):\n    %tv_checkpoint\nprint('looped')",
    "!echo from-the-shell",
)
WARNING = "tablevault could not"


def visible(reply: Reply) -> tuple[object, ...]:
    """What the user sees of a cell, apart from its execution count."""
    return (
        reply.status,
        reply.ename,
        reply.evalue,
        reply.stdout,
        [result["data"] for result in reply.results],
        [(error["ename"], error["evalue"]) for error in reply.errors],
    )


@contextmanager
def no_file_writes(pid: int) -> Iterator[None]:
    """Make every file write of process ``pid`` fail, as on a full disk."""
    process = psutil.Process(pid)
    soft, hard = process.rlimit(psutil.RLIMIT_FSIZE)
    process.rlimit(psutil.RLIMIT_FSIZE, (0, hard))
    try:
        yield
    finally:
        process.rlimit(psutil.RLIMIT_FSIZE, (soft, hard))


@pytest.fixture
def kernel(start_kernel: KernelFactory, client: VaultClient) -> Kernel:
    # quiet: the kernel's own log file would fail to grow while writes are refused
    kernel = start_kernel(quiet=True)
    kernel.ok("%load_ext tablevault")
    finished_cells(client, live_run(client, kernel.pid).run_id, 1)
    return kernel


def test_a_failing_store_changes_no_cell_and_warns_once(
    kernel: Kernel, client: VaultClient
) -> None:
    # Given the cells' output with a working store
    run_id = live_run(client, kernel.pid).run_id
    expected = [visible(kernel.run(source)) for source in CELLS]
    recorded = len(finished_cells(client, run_id, 1 + len(CELLS)))

    # When the kernel can no longer write to the store, the same cells run again
    with no_file_writes(kernel.pid):
        during = [visible(kernel.run(source)) for source in CELLS]
        kernel.drain(1.0)
        warnings_while_failing = kernel.stderr_text().count(WARNING)

    # Then each cell showed exactly what it showed before, and one warning said why
    assert during == expected
    assert warnings_while_failing == 1

    # And once the store is writable again, recording resumes, with one note saying so
    kernel.ok("'recording again'")
    items = finished_cells(client, run_id, recorded + 1)
    assert [item.source for item in items[recorded:]] == ["'recording again'"]
    wait_for(
        lambda: kernel.drain(0.1) or "reachable again" in kernel.stderr_text(),
        "the note that the store is back",
    )
    assert kernel.stderr_text().count(WARNING) == 1


def test_a_locked_store_does_not_delay_cells(
    kernel: Kernel, client: VaultClient, home: Path
) -> None:
    # Given another process holding the store's write lock longer than the busy timeout
    run_id = live_run(client, kernel.pid).run_id
    recorded = len(cells(client, run_id))
    holder = sqlite3.connect(home / "tablevault.sqlite3", timeout=10, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    locked_at = time.monotonic()
    try:
        # When cells run meanwhile
        replies = [kernel.run(source) for source in CELLS]
        ran_in = time.monotonic() - locked_at
        time.sleep(max(0.0, 6.0 - (time.monotonic() - locked_at)))
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    # Then they ran at full speed with their usual output, and were recorded once it was free
    assert ran_in < 5.0
    assert [reply.stdout for reply in replies[:1]] == ["45\n"]
    items = finished_cells(client, run_id, recorded + len(CELLS))
    assert [item.source for item in items[recorded:]] == list(CELLS)
    assert [item.status for item in items[recorded:]] == ["ok", "ok", "error", "ok", "ok"]
    assert WARNING not in kernel.stderr_text()
