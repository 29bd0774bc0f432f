"""Every cell a kernel runs after ``%load_ext tablevault`` is recorded, and recorded right.

One kernel serves the module; each test runs its cells and looks at the records that follow
the ones already there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tablevault import VaultClient
from tablevault.store.records import CodeItem

from .conftest import Kernel, KernelFactory, cells, finished_cells, live_run, wait_for

NewCells = Callable[..., list[CodeItem]]


@pytest.fixture(scope="module")
def kernel(start_kernel: KernelFactory) -> Kernel:
    kernel = start_kernel()
    kernel.ok("%load_ext tablevault")
    return kernel


@pytest.fixture
def new_cells(kernel: Kernel, client: VaultClient) -> NewCells:
    """``new_cells(count)``: the cells recorded since the test began, once ``count`` ended."""
    run_id = live_run(client, kernel.pid).run_id
    already = len(finished_cells(client, run_id, 1))

    def recorded(count: int) -> list[CodeItem]:
        items = finished_cells(client, run_id, already + count)[already:]
        assert len(items) == count, [item.source for item in items]
        return items

    return recorded


def test_the_loading_cell_is_the_first_record(kernel: Kernel, client: VaultClient) -> None:
    # Given a kernel that ran %load_ext tablevault as its first cell
    run = live_run(client, kernel.pid)

    # When its first record is read
    first = finished_cells(client, run.run_id, 1)[0]

    # Then it is that cell, and the kernel is registered as a notebook under the fallback name
    assert (first.index, first.source, first.status) == (0, "%load_ext tablevault", "ok")
    assert first.execution_count == 1
    assert run.kind == "notebook"
    assert run.name == f"ipython-{kernel.pid}"


def test_a_cell_keeps_its_source_as_typed_count_id_and_timing(
    kernel: Kernel, new_cells: NewCells
) -> None:
    # Given a cell mixing Python, a line magic and a shell escape, sent with a cell id
    source = "import time\ntime.sleep(0.2)\n%time y = 2\n!echo raw"
    before = time.time()

    # When it runs
    reply = kernel.ok(source, cell_id="cell-abc")

    # Then its record has the source untouched, the execution count, the id and the timing
    [item] = new_cells(1)
    assert item.source == source
    assert item.kind == "cell"
    assert item.status == "ok"
    assert item.execution_count == reply.execution_count
    assert item.cell_id == "cell-abc"
    assert before <= item.started_at <= time.time()
    assert item.duration is not None and item.duration >= 0.2
    assert item.exit_code == 0
    assert item.error_type is None


def test_a_syntax_error_is_recorded_once_as_an_error(kernel: Kernel, new_cells: NewCells) -> None:
    # Given a cell that does not compile
    # When it runs
    reply = kernel.run("def f(:")

    # Then IPython refuses it before running it, and one record says error with SyntaxError
    assert reply.ename == "SyntaxError"
    [item] = new_cells(1)
    assert (item.source, item.status, item.error_type) == ("def f(:", "error", "SyntaxError")
    assert "def f(:" in item.traceback
    assert "IPython" not in item.traceback


def test_an_exception_under_time_is_recorded_as_an_error(
    kernel: Kernel, new_cells: NewCells
) -> None:
    # Given a %%time cell whose body raises (IPython 8 showed the error and reported success;
    # IPython 9 re-raises it)
    source = "%%time\n1/0"

    # When it runs
    reply = kernel.run(source)

    # Then the record says error, with the real exception
    assert reply.errors and reply.errors[0]["ename"] == "ZeroDivisionError"
    [item] = new_cells(1)
    assert (item.source, item.status, item.error_type, item.error_message) == (
        source,
        "error",
        "ZeroDivisionError",
        "division by zero",
    )
    assert "ZeroDivisionError: division by zero" in item.traceback


def test_a_failing_script_under_run_is_recorded_as_an_error(
    kernel: Kernel, new_cells: NewCells, tmp_path: Path
) -> None:
    # Given a script that raises
    script = tmp_path / "failing_script.py"
    script.write_text("def main():\n    raise ValueError('boom from the script')\n\nmain()\n")

    # When a cell runs it with %run
    reply = kernel.run(f"%run {script}")

    # Then IPython calls it a success, but the record has the script's exception and frames
    assert reply.status == "ok"
    [item] = new_cells(1)
    assert (item.status, item.error_type, item.error_message) == (
        "error",
        "ValueError",
        "boom from the script",
    )
    assert str(script) in item.traceback
    assert "in main" in item.traceback


def test_empty_cells_leave_no_record_and_the_next_cell_is_attributed_right(
    kernel: Kernel, new_cells: NewCells
) -> None:
    # Given an empty cell and a whitespace-only cell
    kernel.ok("")
    kernel.ok("  \n\t\n")

    # When a real cell follows them
    reply = kernel.ok("answer = 41 + 1\nanswer")

    # Then only that cell is recorded, with its own count and outcome
    [item] = new_cells(1)
    assert item.source == "answer = 41 + 1\nanswer"
    assert item.execution_count == reply.execution_count
    assert item.status == "ok"


def test_a_failing_shell_command_is_recorded_as_typed_with_its_exit_code(
    kernel: Kernel, new_cells: NewCells
) -> None:
    # Given a cell running a shell command that fails
    # When it runs
    kernel.ok("!false")

    # Then the record keeps the line as typed and the command's exit status
    [item] = new_cells(1)
    assert (item.source, item.status, item.exit_code) == ("!false", "ok", 1)


def test_an_unknown_magic_is_an_error_and_the_kernel_lives_on(
    kernel: Kernel, new_cells: NewCells
) -> None:
    # Given a cell calling a magic that does not exist
    # When it runs, and another cell after it
    reply = kernel.run("%no_such_magic_here")
    after = kernel.ok("print('still here')")

    # Then the first is recorded as an error, and the kernel answered the second
    assert reply.ename == "UsageError"
    first, second = new_cells(2)
    assert (first.status, first.error_type) == ("error", "UsageError")
    assert "no_such_magic_here" in first.error_message
    assert second.status == "ok"
    assert after.stdout == "still here\n"


def test_sys_exit_in_a_cell_is_an_error_with_its_status_and_the_kernel_lives_on(
    kernel: Kernel, new_cells: NewCells
) -> None:
    # Given a variable in the kernel
    kernel.ok("kept = 'yes'")

    # When a cell calls sys.exit(3)
    kernel.run("import sys\nsys.exit(3)")

    # Then it is recorded as an error with status 3, and the kernel and its variable remain
    after = kernel.ok("print(kept)")
    _, exited, _ = new_cells(3)
    assert (exited.status, exited.error_type, exited.exit_code) == ("error", "SystemExit", 3)
    assert after.stdout == "yes\n"


def test_an_interrupted_cell_is_recorded_as_interrupted(
    kernel: Kernel, client: VaultClient, new_cells: NewCells
) -> None:
    # Given a long cell that is running
    run_id = live_run(client, kernel.pid).run_id
    msg_id = kernel.submit("import time\ntime.sleep(60)")
    wait_for(
        lambda: cells(client, run_id)[-1].source.endswith("sleep(60)"), "the long cell to start"
    )

    # When the kernel's interrupt button is pressed
    kernel.manager.interrupt_kernel()

    # Then the cell ends with KeyboardInterrupt, is recorded as interrupted, the kernel lives
    reply = kernel.wait(msg_id)
    assert reply.ename == "KeyboardInterrupt"
    kernel.ok("pass")
    interrupted, _ = new_cells(2)
    assert (interrupted.status, interrupted.error_type) == ("interrupted", "KeyboardInterrupt")
    assert interrupted.duration is not None and interrupted.duration < 60


def test_an_interrupted_async_cell_is_recorded_as_interrupted(
    kernel: Kernel, client: VaultClient, new_cells: NewCells
) -> None:
    # Given a cell awaiting at top level (IPython runs it as a coroutine; ipykernel 7 cancels it
    # only when the awaited sleep ends, hence a short one)
    run_id = live_run(client, kernel.pid).run_id
    msg_id = kernel.submit("import asyncio\nawait asyncio.sleep(2)")
    wait_for(
        lambda: cells(client, run_id)[-1].source.endswith("sleep(2)"), "the async cell to start"
    )

    # When the kernel is interrupted
    kernel.manager.interrupt_kernel()

    # Then the cell is cancelled and recorded as interrupted, and the next one normally
    assert kernel.wait(msg_id).ename == "CancelledError"
    kernel.ok("pass")
    interrupted, after = new_cells(2)
    assert interrupted.status == "interrupted"
    assert (after.source, after.status) == ("pass", "ok")
