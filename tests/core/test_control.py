"""Stop, pause and resume of real worker processes, asked for by a controller in this process."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tablevault import EXIT_STOPPED, ProcessStateError, VaultClient

from .conftest import (
    POLL_INTERVAL,
    Worker,
    records,
    run_of,
    script_item,
    wait_for,
    wait_status,
)

StartWorker = Callable[[], Worker]

# Long enough for a running loop (one record every ~10 ms) to append several more records.
QUIET_SPELL = 5 * POLL_INTERVAL


def paused(client: VaultClient, worker: Worker) -> int:
    """Pause a worker, wait until it says so, and return how many records it had appended."""
    client.pause_execution(worker.name)
    wait_status(client, worker, "paused")
    return len(records(client, worker.name))


def test_pause_holds_the_worker_at_a_checkpoint(
    client: VaultClient, ready_loop_worker: StartWorker
) -> None:
    # Given a worker appending records in a loop
    worker = ready_loop_worker()

    # When the controller pauses it
    request = client.pause_execution(worker.name)

    # Then the worker reports paused and appends nothing more while paused
    assert request.action == "pause"
    wait_status(client, worker, "paused")
    held = len(records(client, worker.name))
    time.sleep(QUIET_SPELL)
    assert len(records(client, worker.name)) == held
    assert worker.proc.poll() is None


def test_resume_continues_the_loop_without_losing_a_record(
    client: VaultClient, ready_loop_worker: StartWorker
) -> None:
    # Given a paused worker
    worker = ready_loop_worker()
    held = paused(client, worker)

    # When the controller resumes it
    client.resume_execution(worker.name)

    # Then it runs again, appends more, and its sequence has no gap and no repeat
    wait_status(client, worker, "running")
    wait_for(lambda: len(records(client, worker.name)) > held + 5, "records after the resume")
    seqs = [record["seq"] for record in records(client, worker.name)]
    assert seqs == list(range(len(seqs)))


def test_stop_ends_the_script_cleanly(client: VaultClient, ready_loop_worker: StartWorker) -> None:
    # Given a worker appending records in a loop
    worker = ready_loop_worker()

    # When the controller asks it to stop
    request = client.stop_execution(worker.name)

    # Then it exits with EXIT_STOPPED after its finally block and atexit handlers ran
    assert (request.action, request.state) == ("stop", "pending")
    assert worker.wait_exit() == EXIT_STOPPED
    appended = int(worker.wait_marker("finally_ran"))
    assert worker.marker("atexit_ran") is not None
    # And its run ends stopped, by this controller, with every record it appended kept
    run = run_of(client, worker)
    assert (run.status, run.exit_status, run.stopped_by) == (
        "stopped",
        EXIT_STOPPED,
        client.requester,
    )
    assert run.ended_at is not None
    assert script_item(client, run).status == "stopped"
    assert len(records(client, worker.name)) == appended


def test_a_paused_worker_can_be_stopped(
    client: VaultClient, ready_loop_worker: StartWorker
) -> None:
    # Given a paused worker
    worker = ready_loop_worker()
    paused(client, worker)

    # When the controller asks it to stop
    client.stop_execution(worker.name)

    # Then it leaves the pause and ends stopped, its finally block run
    assert worker.wait_exit() == EXIT_STOPPED
    assert worker.marker("finally_ran") is not None
    assert run_of(client, worker).status == "stopped"


def test_resume_of_a_running_worker_says_it_is_not_paused(
    client: VaultClient, ready_loop_worker: StartWorker
) -> None:
    # Given a worker that runs, not paused
    worker = ready_loop_worker()

    # When the controller asks to resume it
    with pytest.raises(ProcessStateError) as refused:
        client.resume_execution(worker.name)

    # Then the error says so, and the worker goes on untouched
    assert str(refused.value) == f"process {worker.name!r} is not paused (it is running)"
    held = len(records(client, worker.name))
    wait_for(lambda: len(records(client, worker.name)) > held, "more records")


# Registers, then sleeps until the test says "go" before its one checkpoint. Were it to pause
# there, it would wait for a resume that never comes, and never exit.
SLEEPER = """
    import tablevault
    from worker_kit import NAME, mark, wait_for_marker

    vault = tablevault.Vault(user_id="tester", process_name=NAME)
    mark("ready")
    wait_for_marker("go")
    vault.checkpoint_execution()
"""


def test_resume_before_the_checkpoint_cancels_the_pause(
    client: VaultClient, spawn: Callable[..., Worker]
) -> None:
    # Given a worker between checkpoints, whose watcher has seen a pause request
    worker = spawn(SLEEPER)
    worker.wait_marker("ready")
    pause = client.pause_execution(worker.name)
    run = run_of(client, worker)
    wait_for(
        lambda: client.store.recent_requests(run.run_id)[0].state == "acknowledged",
        "the watcher to acknowledge the pause",
    )

    # When the controller resumes it before it reaches the checkpoint
    resume = client.resume_execution(worker.name)

    # Then the pause is withdrawn, and the checkpoint passes straight through
    assert resume.state == "done"
    states = {request.id: request.state for request in client.store.recent_requests(run.run_id)}
    assert states[pause.id] == "cancelled"
    worker.mark("go")
    assert worker.wait_exit() == 0
    assert run_of(client, worker).status == "finished"


def test_ctrl_c_ends_the_pause(client: VaultClient, ready_loop_worker: StartWorker) -> None:
    # Given a paused worker
    worker = ready_loop_worker()
    paused(client, worker)

    # When it gets SIGINT, as from Ctrl-C in its terminal
    worker.signal(signal.SIGINT)

    # Then the wait ends with KeyboardInterrupt in the worker, recorded as an interruption
    worker.wait_marker("keyboard_interrupt")
    assert worker.wait_exit() == -signal.SIGINT
    run = run_of(client, worker)
    assert (run.status, run.exit_status) == ("terminated", 128 + signal.SIGINT)
    item = script_item(client, run)
    assert (item.status, item.error_type) == ("interrupted", "KeyboardInterrupt")


# Calls the module-level checkpoint without ever creating a vault.
NO_VAULT = """
    import tablevault
    from worker_kit import mark

    for _ in range(1000):
        tablevault.checkpoint()
    mark("active_vault", tablevault.active_vault())
"""

# Loops on the module-level checkpoint under a vault.
MODULE_CHECKPOINT_WORKER = """
    import time

    import tablevault
    from worker_kit import NAME, mark

    tablevault.Vault(user_id="tester", process_name=NAME)
    mark("ready")
    while True:
        tablevault.checkpoint()
        time.sleep(0.01)
"""


def test_module_checkpoint_does_nothing_without_a_vault(
    spawn: Callable[..., Worker], store_path: Path
) -> None:
    # Given a script that never creates a vault
    worker = spawn(NO_VAULT)

    # When it calls tablevault.checkpoint() many times
    code = worker.wait_exit()

    # Then nothing happened: it ended normally, with no vault and not even a store file
    assert code == 0, worker.stderr
    assert worker.wait_marker("active_vault") == "None"
    assert not store_path.exists()


def test_module_checkpoint_obeys_a_stop_under_a_vault(
    client: VaultClient, spawn: Callable[..., Worker]
) -> None:
    # Given a script that loops on tablevault.checkpoint() under a vault
    worker = spawn(MODULE_CHECKPOINT_WORKER)
    worker.wait_marker("ready")

    # When the controller asks it to stop
    client.stop_execution(worker.name)

    # Then the module-level checkpoint obeys it
    assert worker.wait_exit() == EXIT_STOPPED
    assert run_of(client, worker).status == "stopped"
