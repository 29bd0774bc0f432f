"""Loading and unloading the extension, and a real notebook run the way nbconvert runs it."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tablevault import VaultClient

from .conftest import KernelFactory, cells, finished_cells, kernel_env, live_run, wait_for


def test_unloading_ends_the_registration_and_removes_hooks_and_magics(
    start_kernel: KernelFactory, client: VaultClient
) -> None:
    # Given a kernel that loaded the extension and ran a cell
    kernel = start_kernel()
    kernel.ok("%load_ext tablevault")
    kernel.ok("a = 1")
    run = live_run(client, kernel.pid)

    # When it unloads the extension and runs more cells
    kernel.ok("%unload_ext tablevault")
    kernel.ok("b = 2")
    magic = kernel.run("%tv_ps")

    # Then the run ended as finished with the unloading cell as its last record
    ended = wait_for(
        lambda: (r := client.store.get_run(run_id=run.run_id)).ended_at and r, "the run to end"
    )
    assert ended.status == "finished"
    assert [(item.source, item.status) for item in cells(client, run.run_id)] == [
        ("%load_ext tablevault", "ok"),
        ("a = 1", "ok"),
        ("%unload_ext tablevault", "ok"),
    ]
    # And the magics are gone, and IPython's hooks hold nothing of tablevault
    assert magic.ename == "UsageError" and "tv_ps" in magic.stderr
    hooks = kernel.ok(
        "ip = get_ipython()\n"
        "print([f for e in ('pre_run_cell', 'post_run_cell') for f in ip.events.callbacks[e]"
        " if 'tablevault' in getattr(f, '__module__', '')], ip.custom_exceptions)"
    )
    assert hooks.stdout == "[] ()\n"


def test_loading_again_starts_a_new_run(start_kernel: KernelFactory, client: VaultClient) -> None:
    # Given a kernel that loaded and unloaded the extension
    kernel = start_kernel()
    kernel.ok("%load_ext tablevault")
    first = live_run(client, kernel.pid)
    kernel.ok("%unload_ext tablevault")
    wait_for(lambda: client.store.get_run(run_id=first.run_id).ended_at, "the first run to end")

    # When it loads the extension again
    kernel.ok("%load_ext tablevault")
    kernel.ok("c = 3")

    # Then a new run records from the loading cell on, under the same default name
    second = live_run(client, kernel.pid)
    assert second.run_id != first.run_id
    assert second.name == first.name
    items = finished_cells(client, second.run_id, 2)
    assert [item.source for item in items] == ["%load_ext tablevault", "c = 3"]
    assert kernel.ok("%tv_checkpoint").status == "ok"
    # And the new run is not the child of the closed one, and `vault` is the new vault
    assert second.parent_run_id is None
    assert kernel.ok("print(vault.run.run_id)").stdout.strip() == second.run_id


def test_a_closed_vault_refuses_to_append(start_kernel: KernelFactory) -> None:
    # Given a kernel that kept a vault it then closed
    kernel = start_kernel()
    kernel.ok("%load_ext tablevault\nold = vault")
    kernel.ok("%unload_ext tablevault")

    # When it appends through the closed vault
    reply = kernel.run("old.append_record('t', {'a': 1})")

    # Then it is told to make a new one, rather than writing into the ended run
    assert reply.status == "error"
    assert reply.ename == "ProcessStateError"
    assert "is closed; create a new Vault()" in reply.evalue


def test_a_notebook_run_by_nbclient_is_recorded_cell_by_cell(
    home: Path,
    ipython_dir: Path,
    client: VaultClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a notebook that loads the extension, as papermill and nbconvert run them
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext tablevault"),
        nbformat.v4.new_code_cell("numbers = [n * n for n in range(5)]\nsum(numbers)"),
        nbformat.v4.new_markdown_cell("Markdown is not run, so not recorded."),
        nbformat.v4.new_code_cell("%%time\nraise RuntimeError('from the notebook')"),
        nbformat.v4.new_code_cell("print(vault.process_name)"),
    ]
    for variable, value in kernel_env(home, ipython_dir).items():
        monkeypatch.setenv(variable, value)

    # When nbclient executes it
    NotebookClient(
        notebook,
        timeout=60,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()

    # Then each code cell is recorded with its outcome; nbclient sends no cell ids
    name = notebook.cells[-1].outputs[0]["text"].strip()
    run = client.get_process(name)
    assert run.kind == "notebook"
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    items = finished_cells(client, run.run_id, len(code_cells))
    assert [item.source for item in items] == [cell.source for cell in code_cells]
    assert [item.cell_id for item in items] == [None] * len(code_cells)
    assert [item.status for item in items] == ["ok", "ok", "error", "ok"]
    assert items[2].error_type == "RuntimeError"


def test_a_kernel_shut_down_ends_its_run_as_finished_with_every_cell_recorded(
    start_kernel: KernelFactory, client: VaultClient
) -> None:
    # Given a kernel that ran a cell just before being shut down
    kernel = start_kernel()
    kernel.ok("%load_ext tablevault")
    run = live_run(client, kernel.pid)
    kernel.ok("last = 'cell'")

    # When it is shut down the ordinary way
    kernel.client.stop_channels()
    kernel.manager.shutdown_kernel(now=False)

    # Then its run ended as finished, and the last cell was written before the end
    ended = wait_for(
        lambda: (r := client.store.get_run(run_id=run.run_id)).ended_at and r, "the run to end"
    )
    assert ended.status == "finished"
    assert [(item.source, item.status) for item in cells(client, run.run_id)][-1] == (
        "last = 'cell'",
        "ok",
    )


def test_the_extensions_own_failures_change_no_cell_and_warn_once(
    start_kernel: KernelFactory,
) -> None:
    # Given a kernel whose recorder breaks in its hooks and in its writer. Nothing real makes
    # it fail (such a failure is a bug), so the breakage is put in by hand.
    kernel = start_kernel()
    kernel.ok("%load_ext tablevault")
    kernel.ok(
        "class Broken:\n"
        "    def __getattr__(self, name):\n"
        "        raise RuntimeError('broken on purpose')\n"
        "vault._recorder._store = Broken()\n"
        "vault._recorder._vault = Broken()"
    )

    # When cells run
    replies = [kernel.run(source) for source in ("print(6 * 7)", "1/0", "print('after')")]
    kernel.drain(0.5)

    # Then they show what they would show anyway, and one warning says tablevault failed
    assert [(reply.status, reply.stdout, reply.ename) for reply in replies] == [
        ("ok", "42\n", None),
        ("error", "", "ZeroDivisionError"),
        ("ok", "after\n", None),
    ]
    assert kernel.stderr_text().count("tablevault could not") == 1
    assert "Traceback" not in kernel.stderr_text()
