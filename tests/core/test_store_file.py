"""The store file itself: replaced under a worker, or held by another process's lock."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tablevault import StoreUnavailableError, VaultClient

from .conftest import Worker, records, wait_for

Spawn = Callable[..., Worker]

APPENDING_WORKER = """
    import time

    import tablevault
    from worker_kit import NAME, mark

    vault = tablevault.Vault(process_name=NAME)
    mark("ready")
    refused = 0
    while refused < 3:
        try:
            vault.append_record(NAME, {"at": time.time()})
        except tablevault.StoreError as exc:
            refused += 1
            mark("refusal", exc)
        vault.checkpoint_execution()
        time.sleep(0.02)
    mark("done")
"""


def test_a_deleted_store_file_is_refused_not_written_to_unseen(
    spawn: Spawn, client: VaultClient, store_path: Path
) -> None:
    # Given a worker appending records to the store
    worker = spawn(APPENDING_WORKER)
    worker.wait_marker("ready")
    wait_for(lambda: records(client, worker.name), "a first record")

    # When the store file is deleted under it
    for leftover in store_path.parent.glob(store_path.name + "*"):
        leftover.unlink()

    # Then its appends fail with a clear error instead of going to the deleted file
    assert "was deleted or replaced" in worker.wait_marker("refusal")
    worker.wait_marker("done")
    assert worker.wait_exit() == 0
    # And it warned once about the store, not once per failure
    assert worker.stderr.count("tablevault could not") == 1


def test_reading_works_while_another_process_holds_the_write_lock(
    client: VaultClient, store_path: Path, vault_env: dict[str, str]
) -> None:
    # Given a store in WAL mode with a registered process, and a writer holding its lock
    ready = subprocess.run(
        [sys.executable, "-c", "import tablevault; tablevault.Vault(process_name='held')"],
        env=vault_env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert ready.returncode == 0
    holder = sqlite3.connect(store_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        # When another process lists the processes from the command line
        listing = subprocess.run(
            [sys.executable, "-m", "tablevault", "ps", "--all"],
            env=vault_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    # Then it reads without waiting for the lock
    assert listing.returncode == 0, listing.stderr
    assert "held" in listing.stdout


def test_a_store_replaced_by_another_file_is_refused(store_path: Path) -> None:
    # Given a store object whose file is then replaced by a fresh one
    from tablevault.store.sqlite import SQLiteStore

    store = SQLiteStore(store_path)
    replacement = store_path.with_suffix(".new")
    SQLiteStore(replacement).close()
    os.replace(replacement, store_path)

    # When it is used again, then it says why instead of reading the wrong file
    try:
        store.list_runs()
    except StoreUnavailableError as exc:
        assert "deleted or replaced" in str(exc)
    else:
        raise AssertionError("a replaced store file was used without a word")
    finally:
        store.close()
