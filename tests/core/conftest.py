"""Real worker processes for the core tests, the store they share, and a controller.

Each test gets a fresh store folder (``TABLEVAULT_HOME``) under its ``tmp_path``, set in this
process's environment and in every worker's, with short poll and heartbeat intervals so that
requests are seen within a fraction of a second. The whole environment is restored after the
test, whatever a Vault in this process wrote to it.

A worker is a Python script the test writes out and runs with ``sys.executable``; it imports
``worker_kit`` (next to this file) to leave markers for the test and wait for the test's
markers. Workers still running when a test ends are killed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tablevault import VaultClient
from tablevault.store.records import CodeItem, ProcessRecord
from tests import waiting

T = TypeVar("T")

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]

POLL_INTERVAL = 0.1
HEARTBEAT_INTERVAL = 0.2
# The longest any awaited condition may take before the test fails. Conditions are polled,
# so a passing test waits only as long as the condition really takes.
WAIT = 20.0

# A worker that loops: checkpoint, append the next sequence number to the table named after
# it. Its `finally` block and an atexit handler leave markers, so a test can tell they ran.
LOOP_WORKER = """
    import atexit
    import signal
    import time

    import tablevault
    from worker_kit import NAME, mark

    # Like a terminal: Ctrl-C raises KeyboardInterrupt even if our parent ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    atexit.register(mark, "atexit_ran")
    vault = tablevault.Vault(user_id="tester", process_name=NAME)
    mark("ready")
    seq = 0
    try:
        while True:
            vault.checkpoint_execution()
            vault.append_record(NAME, {"seq": seq})
            seq += 1
            time.sleep(0.01)
    except KeyboardInterrupt:
        mark("keyboard_interrupt")
        raise
    finally:
        mark("finally_ran", seq)
"""


def wait_for(condition: Callable[[], T], what: str, timeout: float = WAIT) -> T:
    """Poll ``condition`` until it returns neither None nor False, and return that."""
    return waiting.wait_for(condition, what, timeout)


def unique_name(prefix: str = "worker") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Worker:
    """One worker process, its folder of markers and its captured output."""

    def __init__(self, name: str, folder: Path, script: Path, proc: subprocess.Popen) -> None:
        self.name = name
        self.folder = folder
        self.script = script
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def marker(self, marker: str) -> str | None:
        """The text of a marker the worker left, or None if it has not left it."""
        try:
            return (self.folder / marker).read_text()
        except FileNotFoundError:
            return None

    def wait_marker(self, marker: str, timeout: float = WAIT) -> str:
        def left() -> str | None:
            text = self.marker(marker)
            if text is None and self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited ({self.proc.returncode}) before leaving {marker!r}:\n"
                    f"{self.stderr}"
                )
            return text

        return wait_for(left, f"{self.name} to leave the marker {marker!r}", timeout)

    def mark(self, marker: str, text: str = "") -> None:
        """Leave a marker for the worker."""
        (self.folder / marker).write_text(text)

    def wait_exit(self, timeout: float = WAIT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still runs after {timeout:.0f} s:\n{self.stderr}"
            ) from None

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    @property
    def stderr(self) -> str:
        return (self.folder / "stderr.txt").read_text()


def store_variables(home: Path) -> dict[str, str]:
    """The environment of processes sharing the store in ``home``, with short intervals."""
    variables = {
        name: value for name, value in os.environ.items() if not name.startswith("TABLEVAULT_")
    }
    variables.update(
        {
            "TABLEVAULT_HOME": str(home),
            "TABLEVAULT_POLL_INTERVAL": str(POLL_INTERVAL),
            "TABLEVAULT_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
        }
    )
    return variables


class Workers:
    """Starts workers over one store, each in a folder of its own under ``folder``."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = {
            **env,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(
                filter(
                    None,
                    [
                        str(REPO_ROOT),
                        str(HERE),
                        env.get("PYTHONPATH"),
                    ],
                )
            ),
        }
        self.started: list[Worker] = []

    def start(
        self,
        source: str,
        name: str | None = None,
        *args: str,
        files: dict[str, str] | None = None,
        module: str | None = None,
    ) -> Worker:
        """Run ``source`` as ``worker.py`` in a new folder, with ``args`` after it.

        ``files`` are more files to write to that folder (relative path: text); with
        ``module``, ``python -m module`` runs there instead of ``worker.py``.
        """
        name = name or unique_name()
        folder = self.folder / f"{name}-{len(self.started)}"
        folder.mkdir(parents=True)
        script = folder / "worker.py"
        script.write_text(textwrap.dedent(source))
        for relative, text in (files or {}).items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(textwrap.dedent(text))
        target = ["-m", module] if module else [str(script)]
        env = {**self.env, "TV_WORKER_NAME": name, "TV_WORKER_FOLDER": str(folder)}
        with open(folder / "stdout.txt", "wb") as out, open(folder / "stderr.txt", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, *target, *args],
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        worker = Worker(name, folder, script, proc)
        self.started.append(worker)
        return worker

    def kill_all(self) -> None:
        """Kill the workers still running, and reap them all."""
        for worker in self.started:
            if worker.proc.poll() is None:
                worker.proc.kill()
            worker.proc.wait()


@pytest.fixture
def vault_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Point this process and its workers at a fresh store; restore os.environ afterwards."""
    saved = dict(os.environ)
    variables = store_variables(tmp_path / "home")
    os.environ.clear()
    os.environ.update(variables)
    yield variables

    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def store_path(vault_env: dict[str, str]) -> Path:
    return Path(vault_env["TABLEVAULT_HOME"]) / "tablevault.sqlite3"


@pytest.fixture
def spawn(vault_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Starts workers over this test's store (see :meth:`Workers.start`)."""
    workers = Workers(tmp_path / "workers", vault_env)
    yield workers.start

    workers.kill_all()


@pytest.fixture
def client(vault_env: dict[str, str]) -> Iterator[VaultClient]:
    """A controller in this process, with a requester name of its own."""
    controller = VaultClient(requester=unique_name("controller"))
    yield controller

    controller.store.close()


@pytest.fixture
def ready_loop_worker(spawn: Callable[..., Worker], client: VaultClient) -> Callable[[], Worker]:
    """Starts a LOOP_WORKER and returns once it has appended a few records."""

    def start() -> Worker:
        worker = spawn(LOOP_WORKER)
        worker.wait_marker("ready")
        wait_for(lambda: len(records(client, worker.name)) >= 3, f"{worker.name}'s records")
        return worker

    return start


def records(client: VaultClient, table: str) -> list[dict[str, Any]]:
    return client.query_record_list(table)


def run_of(client: VaultClient, worker: Worker) -> ProcessRecord:
    return client.get_process(worker.name)


def script_item(client: VaultClient, run: ProcessRecord) -> CodeItem:
    """The one code item a script run records."""
    items = client.store.code_items(run.run_id)
    assert len(items) == 1, f"a script records its source once, not {len(items)} times"
    return items[0]


def wait_status(client: VaultClient, worker: Worker, status: str) -> ProcessRecord:
    return wait_for(
        lambda: (run := run_of(client, worker)).status == status and run,
        f"{worker.name} to be {status}",
    )
