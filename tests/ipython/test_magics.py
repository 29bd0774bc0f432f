"""The ``%tv_*`` magics: help, one-line usage errors, the process table, control, renaming."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tablevault import EXIT_STOPPED, VaultClient

from .conftest import (
    Kernel,
    KernelFactory,
    Reply,
    finished_cells,
    kernel_env,
    live_run,
    unique_name,
    wait_for,
)

WORKER = """\
import sys
import time
from tablevault import Vault

vault = Vault(process_name=sys.argv[1])
while True:
    vault.checkpoint_execution()
    time.sleep(0.02)
"""


@pytest.fixture(scope="module")
def kernel(start_kernel: KernelFactory) -> Kernel:
    kernel = start_kernel()
    kernel.ok("%load_ext tablevault")
    return kernel


@pytest.fixture
def worker(
    home: Path, ipython_dir: Path, tmp_path: Path, client: VaultClient
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A script looping over checkpoints, registered under a fresh name."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    name = unique_name("worker")
    process = subprocess.Popen(
        [sys.executable, str(script), name],
        env=kernel_env(home, ipython_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    live_run(client, process.pid)
    yield name, process
    if process.poll() is None:
        process.kill()
    process.wait()


def assert_one_line_usage_error(reply: Reply, *fragments: str) -> None:
    assert reply.ename == "UsageError"
    assert reply.errors == [], "a UsageError shows no traceback"
    assert reply.stderr.count("\n") == 1 and reply.stderr.startswith("UsageError: ")
    for fragment in fragments:
        assert fragment in reply.stderr


def test_tv_stop_help_is_real_help(kernel: Kernel) -> None:
    # Given the extension loaded
    # When a user asks for %tv_stop's help
    reply = kernel.ok("%tv_stop?")

    # Then the pager gets the usage line, the description and the argument's help
    [page] = [item for item in reply.payload if item.get("source") == "page"]
    text = page["data"]["text/plain"]
    assert "%tv_stop NAME" in text
    assert "Ask a process to stop at its next checkpoint" in text
    assert "the process to stop, as %tv_ps lists it" in text


@pytest.mark.parametrize(
    ("line", "fragments"),
    [
        ("%tv_stop", ("required: NAME",)),
        ("%tv_pause --bogus someone", ("unrecognized arguments: --bogus",)),
        ("%tv_stop no-such-process-here", ("no process named 'no-such-process-here'",)),
        ("%tv_checkpoint now", ("unrecognized arguments: now",)),
        ("%tv_ps --live", ("unrecognized arguments: --live",)),
        ("%tv_init", ("required: NAME",)),
        ('%tv_stop "unclosed', ("cannot read the arguments", "No closing quotation")),
    ],
)
def test_bad_input_is_a_one_line_usage_error(
    kernel: Kernel, line: str, fragments: tuple[str, ...]
) -> None:
    # Given the extension loaded
    # When a magic gets bad input
    reply = kernel.run(line)

    # Then IPython shows one UsageError line and no traceback
    assert_one_line_usage_error(reply, *fragments)


def test_a_refused_request_is_a_one_line_usage_error(
    kernel: Kernel, worker: tuple[str, subprocess.Popen[bytes]]
) -> None:
    # Given a worker that is running, not paused
    name, _ = worker

    # When the notebook asks to resume it
    reply = kernel.run(f"%tv_resume {name}")

    # Then the store's refusal is one UsageError line
    assert_one_line_usage_error(reply, name)


def test_tv_ps_lists_live_processes_and_marks_this_kernel(
    kernel: Kernel, client: VaultClient, worker: tuple[str, subprocess.Popen[bytes]]
) -> None:
    # Given this kernel and a worker, both live
    name, process = worker
    me = live_run(client, kernel.pid)

    # When %tv_ps runs
    reply = kernel.ok("%tv_ps")

    # Then it prints a header and one row for each, this kernel's marked
    lines = reply.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "KIND", "STATUS", "USER"]
    [mine] = [line for line in lines if me.name in line]
    [theirs] = [line for line in lines if name in line]
    assert mine.startswith(f"* {me.name}") and "notebook" in mine
    assert theirs.startswith(f"  {name}") and "running" in theirs and str(process.pid) in theirs


def test_tv_pause_resume_and_stop_control_another_process(
    kernel: Kernel, client: VaultClient, worker: tuple[str, subprocess.Popen[bytes]]
) -> None:
    # Given a worker looping over checkpoints
    name, process = worker

    # When the notebook pauses it, then resumes it
    paused = kernel.ok(f"%tv_pause {name}")
    wait_for(lambda: client.get_process(name).status == "paused", "the pause")
    resumed = kernel.ok(f"%tv_resume {name}")
    wait_for(lambda: client.get_process(name).status == "running", "the resume")

    # And then stops it
    stopped = kernel.ok(f"%tv_stop {name}")

    # Then the worker exits with the stop status, each magic said what it asked, and the
    # requests name this kernel as the requester
    assert process.wait(timeout=30) == EXIT_STOPPED
    assert paused.stdout.startswith(f"pause of {name!r}: request ")
    assert resumed.stdout.startswith(f"resume of {name!r}: request ")
    assert stopped.stdout.startswith(f"stop of {name!r}: request ")
    run = client.get_process(name)
    me = live_run(client, kernel.pid)
    assert run.status == "stopped"
    assert run.stopped_by is not None and me.name in run.stopped_by

    # And %tv_ps --all still lists it, ended, while %tv_ps does not
    assert name not in kernel.ok("%tv_ps").stdout
    assert any(
        line.split()[:3] == [name, "script", "stopped"]
        for line in kernel.ok("%tv_ps --all").stdout.splitlines()
    )


def test_tv_init_renames_and_describes_the_kernel_keeping_its_cells(
    kernel: Kernel, client: VaultClient
) -> None:
    # Given a kernel that has recorded cells under its default name
    before = live_run(client, kernel.pid)
    recorded = len(finished_cells(client, before.run_id, 1))
    new_name = unique_name("renamed") + " v2.ipynb"

    # When it is renamed, quoting a name with a space, with a user and a description
    reply = kernel.ok(f'%tv_init "{new_name}" --user alice --description "digits MLP, run 2"')

    # Then the same run carries the new name, user and description, and its cells
    assert reply.stdout == f"this kernel is {new_name!r}, for user 'alice'\n"
    run = client.get_process(new_name)
    assert run.run_id == before.run_id
    assert (run.user_id, run.description) == ("alice", "digits MLP, run 2")
    assert len(finished_cells(client, run.run_id, recorded + 1)) >= recorded + 1
    assert client.query_process_list(description_text="digits MLP") == [new_name]


def test_tv_init_refuses_a_name_held_by_a_live_process(
    kernel: Kernel, worker: tuple[str, subprocess.Popen[bytes]]
) -> None:
    # Given a worker holding a name
    name, _ = worker

    # When the kernel asks for that name
    reply = kernel.run(f"%tv_init {name}")

    # Then it is refused in one line that names the holder
    assert_one_line_usage_error(reply, name, "held by a live process")
