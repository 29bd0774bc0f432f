"""A notebook loop with ``%tv_checkpoint``, paused, resumed and stopped from another process.

The other process is this test, through a VaultClient. Progress is read from the kernel's
heartbeat (its checkpoint count), since a busy kernel cannot be asked for its variables.
"""

from __future__ import annotations

import time

import pytest

from tablevault import VaultClient
from tablevault.store.records import CodeItem, ProcessRecord

from .conftest import (
    HEARTBEAT_INTERVAL,
    Kernel,
    KernelFactory,
    cells,
    live_run,
    unique_name,
    wait_for,
)

LOOP = """\
import time
progress = 0
for step in range(100_000):
    time.sleep(0.01)
    progress += 1
    %tv_checkpoint
"""


@pytest.fixture(scope="module")
def kernel(start_kernel: KernelFactory) -> Kernel:
    kernel = start_kernel()
    kernel.ok("%load_ext tablevault")
    return kernel


@pytest.fixture
def name(kernel: Kernel, client: VaultClient) -> str:
    """A fresh name for the kernel, so that each test's requests are its own."""
    fresh = unique_name("loop")
    kernel.ok(f"%tv_init {fresh}")
    return fresh


def status_is(client: VaultClient, name: str, status: str) -> ProcessRecord | None:
    run = client.get_process(name)
    return run if run.status == status else None


def checkpoints(client: VaultClient, name: str) -> int:
    return client.get_process(name).checkpoint_count


def last_cell(client: VaultClient, name: str) -> CodeItem | None:
    items = cells(client, client.get_process(name).run_id)
    return items[-1] if items else None


def ended_last_cell(client: VaultClient, name: str) -> CodeItem | None:
    item = last_cell(client, name)
    return item if item is not None and item.status != "running" else None


def loop_running(client: VaultClient, name: str) -> bool:
    """The loop cell has started and passed a few checkpoints (seen in a heartbeat)."""
    item = last_cell(client, name)
    return item is not None and item.source == LOOP and checkpoints(client, name) > 5


def test_pause_holds_the_loop_resume_continues_it_stop_ends_the_cell(
    kernel: Kernel, client: VaultClient, name: str
) -> None:
    # Given a notebook loop passing checkpoints
    msg_id = kernel.submit(LOOP)
    wait_for(lambda: loop_running(client, name), "the loop to run")

    # When another process pauses it
    client.pause_execution(name)

    # Then it is paused, and its progress stops
    wait_for(lambda: status_is(client, name, "paused"), "the pause")
    time.sleep(3 * HEARTBEAT_INTERVAL)  # the heartbeat reports the count a moment later
    held = checkpoints(client, name)
    time.sleep(0.5)
    assert checkpoints(client, name) == held

    # When it is resumed
    client.resume_execution(name)

    # Then the same loop goes on
    wait_for(lambda: status_is(client, name, "running"), "the resume")
    wait_for(lambda: checkpoints(client, name) > held + 5, "progress after the resume")

    # When it is stopped
    client.stop_execution(name)

    # Then the cell ends with one line naming who asked, and is recorded as stopped
    reply = kernel.wait(msg_id)
    assert reply.ename == "StopRequested"
    assert len(reply.errors) == 1
    assert reply.errors[0]["traceback"] == [
        "StopRequested: stopped at a checkpoint at the request of tester@lab (pytest)"
    ]
    stopped = wait_for(lambda: ended_last_cell(client, name), "the loop's record to end")
    assert (stopped.status, stopped.error_type) == ("stopped", "StopRequested")
    assert "tester@lab (pytest)" in stopped.error_message

    # And the kernel lives on, still registered and running, with the loop's variables intact
    after = kernel.ok("print(progress == step + 1, progress > 10)")
    assert after.stdout == "True True\n"
    assert client.get_process(name).status == "running"


def test_the_interrupt_button_ends_a_pause(kernel: Kernel, client: VaultClient, name: str) -> None:
    # Given a notebook loop paused at a checkpoint
    msg_id = kernel.submit(LOOP)
    wait_for(lambda: loop_running(client, name), "the loop to run")
    client.pause_execution(name)
    wait_for(lambda: status_is(client, name, "paused"), "the pause")

    # When the kernel's interrupt button is pressed
    kernel.manager.interrupt_kernel()

    # Then the wait ends, the cell is recorded as interrupted and the process runs again
    reply = kernel.wait(msg_id)
    assert reply.ename == "KeyboardInterrupt"
    interrupted = wait_for(lambda: ended_last_cell(client, name), "the loop's record to end")
    assert interrupted.status == "interrupted"
    wait_for(lambda: status_is(client, name, "running"), "the run to be running again")
    assert kernel.ok("print(progress > 0)").stdout == "True\n"


def test_a_stop_while_paused_ends_the_cell(kernel: Kernel, client: VaultClient, name: str) -> None:
    # Given a notebook loop paused at a checkpoint
    msg_id = kernel.submit(LOOP)
    wait_for(lambda: loop_running(client, name), "the loop to run")
    client.pause_execution(name)
    wait_for(lambda: status_is(client, name, "paused"), "the pause")

    # When it is stopped
    client.stop_execution(name)

    # Then the cell ends as stopped and the kernel keeps its variables
    assert kernel.wait(msg_id).ename == "StopRequested"
    stopped = wait_for(lambda: ended_last_cell(client, name), "the loop's record to end")
    assert stopped.status == "stopped"
    assert kernel.ok("print(progress > 0)").stdout == "True\n"


def test_a_stop_requested_between_cells_ends_the_next_checkpoint(
    kernel: Kernel, client: VaultClient, name: str
) -> None:
    # Given a stop requested while the kernel is idle, and seen by it
    request = client.stop_execution(name)
    run_id = live_run(client, kernel.pid).run_id
    wait_for(
        lambda: client.store.recent_requests(run_id)[0].state == "acknowledged",
        f"request {request.id} to be seen",
    )

    # When a cell reaches a checkpoint
    reply = kernel.run("reached = 'before'\n%tv_checkpoint\nreached = 'after'")

    # Then that cell stops there, and what ran before the checkpoint stays done
    assert reply.ename == "StopRequested"
    assert kernel.ok("print(reached)").stdout == "before\n"
