"""Failures inside the server: no traceback ever leaves it, and a slow store blocks nothing else.

The server here runs with ``serve_traceback = True``, the setting under which jupyter_server
would put tracebacks in error pages.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tablevault.identity import host_name

from .conftest import TableVaultAPI, Worker, unique


@pytest.fixture
def tablevault_config() -> dict[str, Any]:
    return {"ServerApp": {"serve_traceback": True}}


def _store_file(home: Path) -> Path:
    return home / "tablevault.sqlite3"


async def test_an_unexpected_error_is_500_without_a_traceback(
    api: TableVaultAPI, tablevault_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a store holding a run whose pid is not a number (written by something else)
    with sqlite3.connect(_store_file(tablevault_home)) as db:
        db.execute(
            "INSERT INTO runs (run_id, name, user_id, kind, host, pid, create_time, "
            "started_at, status) VALUES ('r1', 'odd', 'u', 'script', ?, 'not-a-pid', 0, 0, "
            "'running')",
            (host_name(),),
        )
    db.close()

    # When the list is read
    reply = await api.get("processes")

    # Then the answer is a plain 500, and the traceback went to the server's log only
    assert reply.code == 500
    assert reply.body == {"message": "Internal Server Error", "reason": None}
    assert b"Traceback" not in reply.raw and b"not-a-pid" not in reply.raw
    assert any(record.exc_info for record in caplog.records if record.levelname == "ERROR")


async def test_a_locked_store_delays_only_its_own_requests(
    api: TableVaultAPI,
    jp_fetch: Any,
    tablevault_home: Path,
    start_worker: Callable[..., Worker],
) -> None:
    # Given a process, and another program holding the store's write lock
    worker = start_worker(unique("locked"), "idle")
    holder = sqlite3.connect(_store_file(tablevault_home), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        # When a control request waits for the lock
        pause = asyncio.ensure_future(api.post(worker.name, "pause"))
        await asyncio.sleep(0.5)

        # Then the rest of the server, and reading tablevault, still answer at once
        started = time.monotonic()
        status = await jp_fetch("api", "status")
        listing = await api.get("processes")
        assert status.code == 200 and listing.code == 200
        assert time.monotonic() - started < 1.0
        assert not pause.done()
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    # And the request goes through once the lock is released
    reply = await pause
    assert reply.code == 202
