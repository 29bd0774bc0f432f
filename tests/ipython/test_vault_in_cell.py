"""``Vault(...)`` in a cell, without ``%load_ext``: that cell and every later one are recorded.

Also: a process started from a cell learns that cell as its parent.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tablevault import VaultClient

from .conftest import Kernel, KernelFactory, finished_cells, unique_name, wait_for

CHILD = """\
import sys
from tablevault import Vault

vault = Vault(process_name=sys.argv[1])
print(vault.run.parent_name, vault.run.parent_index)
"""


@pytest.fixture(scope="module")
def name() -> str:
    return unique_name("notebook")


@pytest.fixture(scope="module")
def kernel(start_kernel: KernelFactory, name: str) -> Kernel:
    kernel = start_kernel()
    kernel.ok("print('before tablevault')")
    kernel.ok(f"from tablevault import Vault\nvault = Vault(process_name={name!r})")
    return kernel


def test_the_cell_creating_the_vault_is_recorded_and_those_before_are_not(
    kernel: Kernel, client: VaultClient, name: str
) -> None:
    # Given a kernel whose second cell created a Vault
    run = client.get_process(name)

    # When a later cell runs
    kernel.ok("z = 3")

    # Then the records start with the creating cell, as typed, followed by the later one
    first, later = finished_cells(client, run.run_id, 2)[:2]
    assert first.source == f"from tablevault import Vault\nvault = Vault(process_name={name!r})"
    assert (first.index, first.status, first.execution_count) == (0, "ok", 2)
    assert (later.source, later.index, later.status) == ("z = 3", 1, "ok")
    assert run.kind == "notebook"


def test_a_process_started_from_a_cell_has_that_cell_as_parent(
    kernel: Kernel, client: VaultClient, name: str, tmp_path: Path
) -> None:
    # Given a script that registers itself
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = unique_name("child")
    marker = unique_name("spawn-marker")

    # When a cell starts it as a subprocess
    source = (
        f"# {marker}\nimport subprocess\n"
        f"out = subprocess.run([{sys.executable!r}, {str(script)!r}, {child!r}],"
        " capture_output=True, text=True, check=True).stdout"
    )
    kernel.ok(source)

    # Then the child names the notebook and that cell's index as its parent
    parent = client.get_process(name)
    spawning = wait_for(
        lambda: next(
            (item for item in finished_cells(client, parent.run_id, 1) if item.source == source),
            None,
        ),
        "the spawning cell's record",
    )
    run = client.get_process(child)
    assert (run.parent_name, run.parent_index) == (name, spawning.index)
    assert run.parent_run_id == parent.run_id
    assert kernel.ok("print(out, end='')").stdout == f"{name} {spawning.index}\n"

    # And a search by the parent's code finds it
    assert wait_for(
        lambda: child in client.query_process_list(parent_code_text=marker),
        "the search to find the child",
    )
    assert client.query_process_list(parent_code_text=marker) == [child]


def test_a_child_forked_from_a_cell_registers_as_a_script_not_as_the_notebook(
    kernel: Kernel, client: VaultClient, name: str
) -> None:
    # Given a cell that forks a child which registers itself
    child = unique_name("forked")
    source = (
        "import multiprocessing\n"
        "def register(name):\n"
        "    from tablevault import Vault\n"
        "    Vault(process_name=name).close()\n"
        "worker = multiprocessing.get_context('fork').Process(target=register, "
        f"args=({child!r},))\n"
        "worker.start(); worker.join(); print(worker.exitcode)"
    )

    # When the cell runs
    assert kernel.ok(source).stdout == "0\n"

    # Then the child is its own script run, child of that cell, with none of the notebook's cells
    run = client.get_process(child)
    assert run.kind == "script"
    assert run.parent_name == name
    assert all(item.kind == "script" for item in client.query_process_code(child))
