"""A store that fails under a running worker, and many workers writing to one store at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tablevault import EXIT_STOPPED, VaultClient

from .conftest import Worker, records, run_of, wait_for, wait_status

Spawn = Callable[..., Worker]

# Loops forever: counts its turns in a marker, checkpoints, and appends a record, counting the
# appends the store refused. It gives up on a locked file sooner than tablevault's defaults
# (5 s busy timeout, 6 attempts), so the test's lock outlasts its patience within a second.
STUBBORN_WORKER = """
    import time

    import tablevault
    import tablevault.store.sqlite as sqlite_store
    from worker_kit import NAME, mark

    sqlite_store._BUSY_TIMEOUT_MS = 100
    sqlite_store._WRITE_ATTEMPTS = 3

    vault = tablevault.Vault(user_id="tester", process_name=NAME)
    mark("ready")
    turns = stored = refused = 0
    try:
        while True:
            turns += 1
            mark("turns", turns)
            vault.checkpoint_execution()
            try:
                vault.append_record(NAME, {"turn": turns})
                stored += 1
            except tablevault.StoreError as exc:
                refused += 1
                mark("refused", refused)
                mark("refusal", exc)
            time.sleep(0.01)
    finally:
        mark("stored", stored)
"""


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the store file's write lock from this process, as a stuck writer would."""
    holder = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


def store_warnings(worker: Worker) -> list[str]:
    return [line for line in worker.stderr.splitlines() if "tablevault could not" in line]


def test_a_locked_store_does_not_stop_the_workers_loop(
    client: VaultClient, spawn: Spawn, store_path: Path
) -> None:
    # Given a worker appending records in a loop
    worker = spawn(STUBBORN_WORKER)
    worker.wait_marker("ready")
    wait_for(lambda: len(records(client, worker.name)) >= 3, "the first records")

    # When the store file stays locked by another process for longer than the worker waits
    with locked(store_path):
        worker.wait_marker("refused")
        turns_then = int(worker.wait_marker("turns"))

        # Then the loop goes on, append_record raises a clear StoreError each time, and the
        # worker warned once about the store
        wait_for(lambda: int(worker.wait_marker("turns")) >= turns_then + 2, "more turns")
        assert int(worker.wait_marker("refused")) >= 2
        refusal = worker.wait_marker("refusal")
        assert f"cannot append a record to {worker.name!r}" in refusal
        assert "locked" in refusal
        wait_for(lambda: len(store_warnings(worker)) == 1, "the worker's warning")
        assert worker.proc.poll() is None

    # And once the lock is gone, control works again: a stop is obeyed
    client.stop_execution(worker.name)
    assert worker.wait_exit() == EXIT_STOPPED
    assert run_of(client, worker).status == "stopped"
    # And nothing was dropped or doubled: the store holds exactly the appends that succeeded
    assert len(records(client, worker.name)) == int(worker.wait_marker("stored"))
    assert len(store_warnings(worker)) == 1, worker.stderr


# Registers, waits for the test's "go", then appends 100 records with a checkpoint before each.
APPENDER = """
    import tablevault
    from worker_kit import NAME, mark, wait_for_marker

    vault = tablevault.Vault(user_id="tester", process_name=NAME)
    mark("ready")
    wait_for_marker("go")
    for seq in range(100):
        vault.checkpoint_execution()
        vault.append_record("shared", {"worker": NAME, "seq": seq})
"""

WORKERS = 24
PAUSED = 6


def test_many_workers_share_one_store_without_lock_errors(
    spawn: Spawn, request: pytest.FixtureRequest
) -> None:
    # Given 24 workers registered at once on a new store, a quarter of them asked to pause
    workers = [spawn(APPENDER) for _ in range(WORKERS)]
    for worker in workers:
        worker.wait_marker("ready")
    # (The controller opens the store only now, so that the workers are the ones creating it.)
    client: VaultClient = request.getfixturevalue("client")
    held = workers[:PAUSED]
    for worker in held:
        client.pause_execution(worker.name)
    for worker in held:
        run_id = run_of(client, worker).run_id
        wait_for(
            lambda run_id=run_id: client.store.recent_requests(run_id)[0].state == "acknowledged",
            "the watchers to see their pause",
        )

    # When they all append 100 records each, the paused ones once resumed
    for worker in workers:
        worker.mark("go")
    for worker in held:
        wait_status(client, worker, "paused")
    for worker in held:
        client.resume_execution(worker.name)
    codes = [worker.wait_exit(timeout=60) for worker in workers]

    # Then every worker ended well, none met a locked database, and all records are there
    assert codes == [0] * WORKERS, [worker.stderr for worker in workers]
    for worker in workers:
        assert "locked" not in worker.stderr, worker.stderr
        assert "tablevault could not" not in worker.stderr, worker.stderr
    stored = client.query_record_list("shared")
    assert len(stored) == WORKERS * 100
    for worker in workers:
        seqs = [record["seq"] for record in stored if record["worker"] == worker.name]
        assert seqs == list(range(100)), worker.name
    assert {run_of(client, worker).status for worker in workers} == {"finished"}


def test_a_worker_started_without_its_store_registers_once_the_store_is_back(
    spawn: Spawn, vault_env: dict[str, str]
) -> None:
    # Given a worker started while its store folder cannot be made (a file is in the way)
    home = Path(vault_env["TABLEVAULT_HOME"])
    home.write_text("in the way")
    worker = spawn(STUBBORN_WORKER)
    wait_for(lambda: int(worker.marker("turns") or 0) > 20, "the worker's loop to run")

    # When the store becomes possible again
    home.unlink()

    # Then a later checkpoint registers the worker, and it obeys a stop
    client = VaultClient()
    try:
        run = wait_for(lambda: client.store.get_run(name=worker.name), "a late registration")
        assert run.status == "running"
        client.stop_execution(worker.name)
        assert worker.wait_exit() == EXIT_STOPPED
    finally:
        client.store.close()
    # And it said once that the store failed, and once that it was back
    assert worker.stderr.count("tablevault could not") == 1
    assert worker.stderr.count("reachable again") == 1
