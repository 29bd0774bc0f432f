"""What a script run records: its source once, how it ended, and the parent that started it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tablevault import VaultClient
from tablevault.config import TableVaultSettings
from tablevault.store.records import ProcessRecord

from .conftest import LOOP_WORKER, Worker, Workers, run_of, script_item, store_variables

Spawn = Callable[..., Worker]


def ended(client: VaultClient, spawn: Spawn, body: str) -> tuple[Worker, int]:
    """Run a script that creates a vault and then runs ``body``; return it and its exit code."""
    worker = spawn(textwrap.dedent(VAULT_HEADER) + textwrap.dedent(body))
    return worker, worker.wait_exit()


VAULT_HEADER = """
    import sys
    import threading

    import tablevault
    from worker_kit import NAME, mark

    vault = tablevault.Vault(user_id="tester", process_name=NAME)
"""


def test_normal_end_is_finished(client: VaultClient, spawn: Spawn) -> None:
    # Given a script that creates a vault
    # When it runs to its end
    worker, code = ended(client, spawn, "mark('done')\n")

    # Then its run is finished with exit status 0, its item ok
    assert code == 0, worker.stderr
    run = run_of(client, worker)
    assert (run.status, run.exit_status) == ("finished", 0)
    assert script_item(client, run).status == "ok"


def test_whole_source_is_recorded_once(client: VaultClient, spawn: Spawn) -> None:
    # Given a script that checkpoints many times and appends records
    worker = spawn(LOOP_WORKER)
    worker.wait_marker("ready")

    # When the controller looks at its code
    items = client.query_process_code(worker.name)

    # Then it holds exactly one item: the script's whole source, as in the file
    assert [item.source for item in items] == [worker.script.read_text()]
    assert (items[0].kind, items[0].index) == ("script", 0)


def test_uncaught_exception_is_recorded_and_the_users_hook_still_runs(
    client: VaultClient, spawn: Spawn
) -> None:
    # Given a script whose own excepthook was installed before the vault
    source = """
        import sys

        from worker_kit import NAME, mark

        def users_hook(exc_type, exc, tb):
            mark("users_hook", exc_type.__name__)
            sys.__excepthook__(exc_type, exc, tb)

        sys.excepthook = users_hook

        import tablevault

        vault = tablevault.Vault(user_id="tester", process_name=NAME)
        raise ValueError("the learning rate is negative")
    """

    # When it ends with an uncaught ValueError
    worker = spawn(source)
    code = worker.wait_exit()

    # Then the run failed with the error's type, message and traceback recorded
    assert code == 1
    run = run_of(client, worker)
    assert (run.status, run.exit_status) == ("failed", 1)
    item = script_item(client, run)
    assert (item.status, item.error_type, item.error_message) == (
        "error",
        "ValueError",
        "the learning rate is negative",
    )
    assert item.traceback is not None
    assert item.traceback.startswith("Traceback (most recent call last):")
    assert 'raise ValueError("the learning rate is negative")' in item.traceback
    # And the user's hook ran, printing the traceback as Python does
    assert worker.marker("users_hook") == "ValueError"
    assert "ValueError: the learning rate is negative" in worker.stderr


def test_sys_exit_with_a_status_is_a_failure_not_a_crash(client: VaultClient, spawn: Spawn) -> None:
    # Given a script that creates a vault
    # When it calls sys.exit(2)
    worker, code = ended(client, spawn, "sys.exit(2)\n")

    # Then the process exits 2, and its run failed with exit status 2
    assert code == 2
    run = run_of(client, worker)
    assert (run.status, run.exit_status) == ("failed", 2)
    assert script_item(client, run).error_type == "SystemExit"


def test_exception_in_a_thread_is_recorded_beside_the_script(
    client: VaultClient, spawn: Spawn
) -> None:
    # Given a script whose helper thread raises while the main thread goes on
    body = """
    def helper():
        raise RuntimeError("the loader thread broke")

    thread = threading.Thread(target=helper, name="loader")
    thread.start()
    thread.join()
    """

    # When the script ends normally
    worker, code = ended(client, spawn, body)

    # Then the thread's error is kept with the script's item, whose status is the main thread's
    assert code == 0
    run = run_of(client, worker)
    assert run.status == "finished"
    item = script_item(client, run)
    assert item.status == "ok"
    [error] = item.thread_errors
    assert (error["thread_name"], error["error_type"], error["error_message"]) == (
        "loader",
        "RuntimeError",
        "the loader thread broke",
    )
    assert "raise RuntimeError" in error["traceback"]
    # And Python's own thread hook still printed it
    assert "RuntimeError: the loader thread broke" in worker.stderr


MODULE_SOURCE = """
    import tablevault
    from worker_kit import NAME

    # the body of pkg.mod
    tablevault.Vault(user_id="tester", process_name=NAME)
"""


def test_python_dash_m_records_the_modules_source(client: VaultClient, spawn: Spawn) -> None:
    # Given a package module that creates a vault
    files = {"pkg/__init__.py": "", "pkg/mod.py": MODULE_SOURCE}

    # When it runs as `python -m pkg.mod`
    worker = spawn("raise AssertionError('not run')\n", files=files, module="pkg.mod")

    # Then the recorded source is the module's file
    assert worker.wait_exit() == 0, worker.stderr
    recorded = script_item(client, run_of(client, worker)).source
    assert recorded == (worker.folder / "pkg" / "mod.py").read_text()


def test_runpy_run_path_records_the_file_it_runs(client: VaultClient, spawn: Spawn) -> None:
    # Given a launcher that runs another file as __main__ with runpy
    launcher = """
        import runpy

        runpy.run_path("target.py", run_name="__main__")
    """

    # When that file creates a vault
    worker = spawn(launcher, files={"target.py": MODULE_SOURCE})

    # Then the recorded source is the file runpy ran, not the launcher
    assert worker.wait_exit() == 0, worker.stderr
    recorded = script_item(client, run_of(client, worker)).source
    assert recorded == (worker.folder / "target.py").read_text()


# A parent that starts three children: one by subprocess, one by each multiprocessing context.
PARENT = """
    # parent-code-marker: the children were started from here
    import multiprocessing
    import subprocess
    import sys

    import tablevault
    from worker_kit import FOLDER, NAME, mark


    def child(name, adoptive_parent):
        import tablevault

        tablevault.Vault(user_id="tester", process_name=name, parent_process_name=adoptive_parent)


    if __name__ == "__main__":
        adoptive = sys.argv[1] if len(sys.argv) > 1 else ""
        tablevault.Vault(user_id="tester", process_name=NAME)
        command = [sys.executable, str(FOLDER / "child.py"), NAME + "-subprocess", adoptive]
        subprocess.run(command, check=True)
        for method in ("spawn", "fork"):
            process = multiprocessing.get_context(method).Process(
                target=child, args=(f"{NAME}-{method}", adoptive)
            )
            process.start()
            process.join()
            assert process.exitcode == 0, method
        mark("children_done")
"""

CHILD = """
    import sys

    import tablevault

    tablevault.Vault(user_id="tester", process_name=sys.argv[1], parent_process_name=sys.argv[2])
"""

CHILD_KINDS = ("subprocess", "spawn", "fork")


@dataclass
class Family:
    """Two parent scripts that ran to their end, with their children, in one store."""

    client: VaultClient
    parent: Worker  # whose children inherited it as their parent
    adopter: Worker  # whose children named another process as their parent
    adoptive: Worker  # that other process, a live loop worker

    def children(self, parent: Worker) -> dict[str, ProcessRecord]:
        return {kind: self.client.get_process(f"{parent.name}-{kind}") for kind in CHILD_KINDS}


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Family]:
    """Run both parent scripts side by side, once for the tests that read what they left."""
    folder = tmp_path_factory.mktemp("family")
    workers = Workers(folder / "workers", store_variables(folder / "home"))
    client = VaultClient(
        requester="controller", settings=TableVaultSettings(home=str(folder / "home"))
    )
    parent = workers.start(PARENT, files={"child.py": CHILD})
    adoptive = workers.start(LOOP_WORKER)
    adoptive.wait_marker("ready")
    adopter = workers.start(PARENT, None, adoptive.name, files={"child.py": CHILD})
    for worker in (parent, adopter):
        assert worker.wait_exit() == 0, worker.stderr
    yield Family(client, parent, adopter, adoptive)

    workers.kill_all()
    client.store.close()


def test_children_learn_their_parent_automatically(family: Family) -> None:
    # Given a parent script under a vault
    # When it starts children by subprocess and by multiprocessing (spawn and fork)
    children = family.children(family.parent)

    # Then each child's run names the parent's run and the code item it ran
    parent_run = family.client.get_process(family.parent.name)
    for kind, child in children.items():
        assert (child.parent_name, child.parent_run_id, child.parent_index) == (
            family.parent.name,
            parent_run.run_id,
            0,
        ), kind


def test_an_explicit_parent_overrides_the_inherited_one(family: Family) -> None:
    # Given a parent script whose children name another live process as their parent
    # When it starts them
    children = family.children(family.adopter)

    # Then each child's parent is the one it named, not the one that started it
    adoptive_run = family.client.get_process(family.adoptive.name)
    for kind, child in children.items():
        assert (child.parent_name, child.parent_run_id) == (
            family.adoptive.name,
            adoptive_run.run_id,
        ), kind


def test_children_are_found_by_their_parents_code(family: Family) -> None:
    # Given children started from a script holding some text, and others that named a parent
    # When the controller searches by that text in the parents' code
    found = family.client.query_process_list(parent_code_text="parent-code-marker")

    # Then it finds the children of that script, and only them
    assert sorted(found) == sorted(f"{family.parent.name}-{kind}" for kind in CHILD_KINDS)


def test_each_child_run_ends_finished(family: Family) -> None:
    # Given children started by subprocess and by multiprocessing
    # When they end normally
    children = family.children(family.parent)

    # Then every child's run is recorded finished, not left running for a cleanup to crash
    assert {kind: child.status for kind, child in children.items()} == dict.fromkeys(
        CHILD_KINDS, "finished"
    )
