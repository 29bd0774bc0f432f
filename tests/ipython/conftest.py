"""Real IPython kernels for the extension's tests, and the store they record into.

Each test module shares one store folder (``TABLEVAULT_HOME``) and, where the behaviour allows,
one kernel; a kernel starts in well under a second. Kernels run with short poll and heartbeat
intervals, their IPython history in memory and a private IPython folder, so that nothing of
the machine's own IPython set-up reaches them. The test process looks at the store through a
:class:`~tablevault.VaultClient`, as any other process would.

Records are written by the kernel's writer thread, a moment after the cell; tests therefore
poll for them (``wait_for``) rather than read them once.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from jupyter_client import BlockingKernelClient, KernelManager

from tablevault import VaultClient
from tablevault.config import TableVaultSettings
from tablevault.store.records import CodeItem, ProcessRecord
from tests import waiting

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]

T = TypeVar("T")

POLL_INTERVAL = 0.1
HEARTBEAT_INTERVAL = 0.1
# The longest an awaited condition may take before the test fails; polled, so a passing test
# waits only as long as the condition really takes.
WAIT = 30.0


def wait_for(condition: Callable[[], T], what: str, timeout: float = WAIT) -> T:
    """Poll ``condition`` until it returns neither None nor False, and return that."""
    return waiting.wait_for(condition, what, timeout)


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Reply:
    """What one execute request produced: the reply and the output it sent."""

    status: str
    execution_count: int | None
    ename: str | None
    evalue: str | None
    traceback: list[str]
    stdout: str
    stderr: str
    errors: list[dict[str, Any]]
    results: list[dict[str, Any]]
    payload: list[dict[str, Any]]


@dataclass
class Kernel:
    """A running kernel and a client talking to it."""

    manager: KernelManager
    client: BlockingKernelClient
    # Every iopub message seen, in order; output that arrives after a cell ends is kept too.
    messages: list[dict[str, Any]] = field(default_factory=list)
    _pending_iopub: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _pending_replies: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.manager.provisioner.pid

    def submit(self, code: str, *, cell_id: str | None = None) -> str:
        """Send a cell without waiting for it; returns the request's id for ``wait``."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": False,
        }
        message = self.client.session.msg(
            "execute_request", content, metadata={"cellId": cell_id} if cell_id else {}
        )
        self.client.shell_channel.send(message)
        return message["header"]["msg_id"]

    def wait(self, msg_id: str, timeout: float = WAIT) -> Reply:
        """Collect the output of request ``msg_id`` until the kernel is idle, and its reply."""
        deadline = time.monotonic() + timeout
        output = self._pending_iopub.pop(msg_id, [])
        while not any(_is_idle(message) for message in output):
            message = self.client.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
            self.messages.append(message)
            parent = message["parent_header"].get("msg_id")
            if parent == msg_id:
                output.append(message)
            elif parent:
                self._pending_iopub.setdefault(parent, []).append(message)
        while msg_id not in self._pending_replies:
            reply = self.client.get_shell_msg(timeout=max(0.01, deadline - time.monotonic()))
            self._pending_replies[reply["parent_header"].get("msg_id")] = reply
        content = self._pending_replies.pop(msg_id)["content"]
        return _reply(content, output)

    def run(self, code: str, *, cell_id: str | None = None, timeout: float = WAIT) -> Reply:
        return self.wait(self.submit(code, cell_id=cell_id), timeout)

    def ok(self, code: str, **kwargs: Any) -> Reply:
        """Run a cell that must succeed; fail the test with its error otherwise."""
        reply = self.run(code, **kwargs)
        assert reply.status == "ok", f"{code!r} failed: {reply.ename}: {reply.evalue}"
        return reply

    def drain(self, seconds: float) -> None:
        """Keep reading output for ``seconds``: what threads print between cells."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.client.get_iopub_msg(timeout=left)
            except Exception:  # queue.Empty: nothing more came
                return
            self.messages.append(message)
            parent = message["parent_header"].get("msg_id")
            if parent:
                self._pending_iopub.setdefault(parent, []).append(message)

    def stderr_text(self) -> str:
        return "".join(
            message["content"]["text"]
            for message in self.messages
            if message["msg_type"] == "stream" and message["content"]["name"] == "stderr"
        )

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def _is_idle(message: dict[str, Any]) -> bool:
    return message["msg_type"] == "status" and message["content"]["execution_state"] == "idle"


def _reply(content: dict[str, Any], output: list[dict[str, Any]]) -> Reply:
    def stream(name: str) -> str:
        return "".join(
            message["content"]["text"]
            for message in output
            if message["msg_type"] == "stream" and message["content"]["name"] == name
        )

    return Reply(
        status=content["status"],
        execution_count=content.get("execution_count"),
        ename=content.get("ename"),
        evalue=content.get("evalue"),
        traceback=content.get("traceback", []),
        stdout=stream("stdout"),
        stderr=stream("stderr"),
        errors=[m["content"] for m in output if m["msg_type"] == "error"],
        results=[m["content"] for m in output if m["msg_type"] == "execute_result"],
        payload=content.get("payload", []),
    )


def kernel_env(home: Path, ipython_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a test kernel: this one's, pointed at ``home``, with quick polling."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TABLEVAULT_", "JPY_SESSION_NAME"))
    }
    env.update(
        TABLEVAULT_HOME=str(home),
        TABLEVAULT_POLL_INTERVAL=str(POLL_INTERVAL),
        TABLEVAULT_HEARTBEAT_INTERVAL=str(HEARTBEAT_INTERVAL),
        IPYTHONDIR=str(ipython_dir),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


KernelFactory = Callable[..., Kernel]


@pytest.fixture(scope="session")
def ipython_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ipython")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store folder every kernel of the module records into."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def client(home: Path) -> Iterator[VaultClient]:
    """The test's view of the store, as another process's."""
    viewer = VaultClient(
        settings=TableVaultSettings(home=str(home)), requester="tester@lab (pytest)"
    )
    yield viewer
    viewer.store.close()


@pytest.fixture(scope="module")
def start_kernel(
    home: Path, ipython_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KernelFactory]:
    """Starts kernels on the module's store: ``start_kernel(env={}, args=[], quiet=False)``.

    A kernel's own stdout and stderr (not its cells' output) go to a log file, or nowhere
    with ``quiet``. Kernels still running at the end of the module are shut down.
    """
    started: list[Kernel] = []
    logs = tmp_path_factory.mktemp("kernel-logs")

    def start(
        env: dict[str, str] | None = None, args: list[str] | None = None, quiet: bool = False
    ) -> Kernel:
        manager = KernelManager(kernel_name="python3")
        log_path = logs / f"kernel-{len(started)}.log"
        with open(os.devnull if quiet else log_path, "wb") as log:
            manager.start_kernel(
                env=kernel_env(home, ipython_dir, **(env or {})),
                extra_arguments=["--HistoryManager.hist_file=:memory:", *(args or [])],
                stdout=log,
                stderr=log,
                cwd=str(logs),
            )
        client = manager.blocking_client()
        client.start_channels()
        client.wait_for_ready(timeout=WAIT)
        kernel = Kernel(manager, client)
        started.append(kernel)
        return kernel

    yield start

    for kernel in started:
        kernel.shutdown()


def live_run(client: VaultClient, pid: int) -> ProcessRecord:
    """The live run registered by process ``pid``, once it exists."""
    return wait_for(
        lambda: next((run for run in client.list_processes() if run.pid == pid), None),
        f"process {pid} to register",
    )


def cells(client: VaultClient, run_id: str) -> list[CodeItem]:
    """A run's code items in the order they ran."""
    return list(reversed(client.store.code_items(run_id)))


def finished_cells(client: VaultClient, run_id: str, count: int) -> list[CodeItem]:
    """The run's code items once there are ``count`` of them and none is still running."""

    def ready() -> list[CodeItem] | None:
        items = cells(client, run_id)
        if len(items) >= count and all(item.status != "running" for item in items):
            return items
        return None

    return wait_for(ready, f"{count} finished cells in run {run_id}")
