"""Workers that die: by SIGKILL, which leaves no trace, or by SIGTERM, which is recorded; the
names they held, and the cleanup that finalises what they left open."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from tablevault import InvalidInputError, ProcessStateError, VaultClient
from tablevault.identity import host_name

from .conftest import (
    LOOP_WORKER,
    Worker,
    run_of,
    script_item,
    wait_for,
)

Spawn = Callable[..., Worker]

# Registers, leaves a marker, then sleeps without ever reaching a checkpoint.
IDLE_WORKER = """
    import time

    import tablevault
    from worker_kit import NAME, mark

    tablevault.Vault(user_id="tester", process_name=NAME)
    mark("ready")
    while True:
        time.sleep(0.05)
"""


def killed(
    client: VaultClient, spawn: Spawn, count: int = 1, *, with_pause: bool = False
) -> list[Worker]:
    """Start idle workers side by side and kill -9 them, optionally with a pause pending."""
    workers = [spawn(IDLE_WORKER) for _ in range(count)]
    for worker in workers:
        worker.wait_marker("ready")
        if with_pause:
            client.pause_execution(worker.name)
    for worker in workers:
        worker.signal(signal.SIGKILL)
    for worker in workers:
        assert worker.wait_exit() == -signal.SIGKILL
    return workers


def test_killed_worker_is_found_dead_by_the_liveness_check(
    client: VaultClient, spawn: Spawn
) -> None:
    # Given a worker killed with SIGKILL, which gave it no chance to record anything
    [worker] = killed(client, spawn)

    # When the controller looks it up
    run = run_of(client, worker)

    # Then the liveness check knows it is gone, though nothing was recorded at its death
    assert run.ended_at is None
    assert not client.is_alive(run)


def test_cleanup_finalises_a_killed_worker(client: VaultClient, spawn: Spawn) -> None:
    # Given a worker killed with SIGKILL while a pause request to it was open
    [worker] = killed(client, spawn, with_pause=True)

    # When the controller cleans up everything older than 0 seconds
    counts = client.vault_cleanup(interval=0)

    # Then the run is crashed, its script item lost and its request expired
    assert counts == {"crashed_runs": 1, "lost_items": 1, "expired_requests": 1}
    run = run_of(client, worker)
    assert run.status == "crashed"
    assert run.ended_at is not None
    assert script_item(client, run).status == "lost"
    assert [r.state for r in client.store.recent_requests(run.run_id)] == ["expired"]
    assert worker.name not in [live.name for live in client.list_processes(live_only=True)]
    assert worker.name in [any_run.name for any_run in client.list_processes(live_only=False)]


def test_request_to_a_killed_worker_raises_and_marks_it_crashed(
    client: VaultClient, spawn: Spawn
) -> None:
    # Given a worker killed with SIGKILL
    [worker] = killed(client, spawn)

    # When the controller asks it to stop
    with pytest.raises(ProcessStateError) as refused:
        client.stop_execution(worker.name)

    # Then it is told the process is gone, and the run is finalised as crashed
    assert str(refused.value) == f"process {worker.name!r} is not running (it crashed)"
    assert run_of(client, worker).status == "crashed"


def test_cleanup_leaves_a_dead_run_younger_than_the_interval(
    client: VaultClient, spawn: Spawn
) -> None:
    # Given a worker killed with SIGKILL a moment ago
    [worker] = killed(client, spawn)

    # When the controller cleans up what is older than an hour
    counts = client.vault_cleanup(interval=3600)

    # Then nothing is finalised
    assert counts == {"crashed_runs": 0, "lost_items": 0, "expired_requests": 0}
    run = run_of(client, worker)
    assert run.status == "running"
    assert script_item(client, run).status == "running"


def test_cleanup_with_selected_timestamps_touches_only_those(
    client: VaultClient, spawn: Spawn
) -> None:
    # Given two killed workers, each with its script item still marked running
    chosen, other = killed(client, spawn, 2)
    current = {op["name"]: op["id"] for op in client.get_current_operations()["processes"]}
    assert isinstance(current[chosen.name], int)

    # When the controller cleans up only the first one's item, by its timestamp id
    counts = client.vault_cleanup(interval=0, selected_timestamps=[current[chosen.name]])

    # Then that item is lost and the other worker's is left as it was
    assert counts["lost_items"] == 1
    assert script_item(client, run_of(client, chosen)).status == "lost"
    other_run = run_of(client, other)
    assert script_item(client, other_run).status == "running"
    assert other_run.status == "running"


def test_cleanup_refuses_a_negative_interval(client: VaultClient, spawn: Spawn) -> None:
    # Given a killed worker that a cleanup could finalise
    [worker] = killed(client, spawn)

    # When the controller asks for a cleanup with a negative interval
    with pytest.raises(InvalidInputError) as refused:
        client.vault_cleanup(interval=-1)

    # Then the error names the interval, and nothing was finalised
    assert "interval" in str(refused.value)
    assert run_of(client, worker).status == "running"


def test_sigterm_is_recorded_and_the_worker_dies_of_it(client: VaultClient, spawn: Spawn) -> None:
    # Given a worker that has checkpointed a few times
    worker = spawn(LOOP_WORKER)
    worker.wait_marker("ready")
    wait_for(lambda: len(client.query_record_list(worker.name)) >= 5, "a few turns")

    # When it gets SIGTERM
    worker.signal(signal.SIGTERM)

    # Then it dies of the signal, as it would have without tablevault, after recording it
    assert worker.wait_exit() == -signal.SIGTERM
    run = run_of(client, worker)
    assert (run.status, run.exit_status) == ("terminated", 128 + signal.SIGTERM)
    item = script_item(client, run)
    assert (item.status, item.error_type) == ("interrupted", "SIGTERM")
    # And its checkpoints were counted up to the end, not up to the last heartbeat
    assert run.checkpoint_count >= len(client.query_record_list(worker.name))


def test_a_second_live_worker_cannot_take_the_name(client: VaultClient, spawn: Spawn) -> None:
    # Given a live worker holding a name
    holder = spawn(LOOP_WORKER)
    holder.wait_marker("ready")

    # When a second worker starts under the same name
    rival = spawn(LOOP_WORKER, holder.name)

    # Then it fails with NameTakenError naming the holder's pid and host, and the holder goes on
    assert rival.wait_exit() != 0
    assert "NameTakenError" in rival.stderr
    assert f"pid {holder.pid} on {host_name()}" in rival.stderr
    assert run_of(client, holder).pid == holder.pid
    assert holder.proc.poll() is None


def test_the_name_of_a_killed_worker_can_be_reused(client: VaultClient, spawn: Spawn) -> None:
    # Given a worker that held a name, then was killed with SIGKILL
    [old] = killed(client, spawn)
    old_run = run_of(client, old)

    # When a new worker starts under the same name
    new = spawn(LOOP_WORKER, old.name)
    new.wait_marker("ready")

    # Then it is a new run of that name, and the old run's history is still there
    new_run = run_of(client, new)
    assert new_run.run_id != old_run.run_id
    assert new_run.pid == new.pid
    kept = client.store.get_run(run_id=old_run.run_id)
    assert kept is not None
    assert kept.status == "crashed"
    assert script_item(client, kept).source == old.script.read_text()
    assert old.name in client.query_process_list(code_text="time.sleep(0.05)")
