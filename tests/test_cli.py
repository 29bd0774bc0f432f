"""The ``tablevault`` command, run for real against real worker processes.

Every command runs as ``python -m tablevault`` in a subprocess, against a store in a temporary
folder; the processes it looks at and controls are real scripts that loop over checkpoints.
Tests that only read share one worker; tests that change a worker's state start their own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
# How long a worker may take to register, or to act on a request, before a test fails.
PATIENCE = 30.0
# A worker that waits this long between checkpoints never reaches one during a test.
NEVER = 3600.0
# Found in the source of every worker, for `tablevault search --code`.
MARKER = f"cli-test-marker-{uuid.uuid4().hex[:8]}"

WORKER_SOURCE = f"""\
# {MARKER}: loops over checkpoints, appending one record a step, until stopped.
import sys
import time

from tablevault import Vault

name, pause_between = sys.argv[1], float(sys.argv[2])
vault = Vault(process_name=name, description="a worker for the CLI tests")
step = 0
while True:
    vault.checkpoint_execution()
    vault.append_record("steps", {{"step": step, "worker": name}})
    step += 1
    time.sleep(pause_between)
"""

# `tablevault demo` with a stand-in demo module that prints the arguments it was given.
FAKE_DEMO = """\
import json, sys, types
demo = types.ModuleType("tablevault.demo")
demo.main = lambda argv: print(json.dumps(argv)) or 4
sys.modules["tablevault.demo"] = demo
from tablevault.cli import main
sys.exit(main(sys.argv[1:]))
"""

# How the CLI signs its requests: "<user>@<host> (cli)".
CLI_REQUESTER = re.compile(r"[^@\s]+@\S+ \(cli\)")

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def wait_until(check: Callable[[], T | None], what: str, timeout: float = PATIENCE) -> T:
    """Poll ``check`` until it returns something other than None; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Workers:
    """Starts worker scripts against the test store, and kills those still alive at the end."""

    def __init__(self, folder: Path, env: dict[str, str], tv: RunCli) -> None:
        self.folder = folder
        self.env = env
        self.tv = tv
        self.script = folder / "worker.py"
        self.script.write_text(WORKER_SOURCE)
        self.started: list[Worker] = []

    def start(self, pause_between: float = 0.05) -> Worker:
        name = f"cli-worker-{uuid.uuid4().hex[:8]}"
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, str(self.script), name, str(pause_between)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = Worker(name, process, log)
        self.started.append(worker)
        wait_until(lambda: self._recording(worker), f"{name} to register")
        return worker

    def _recording(self, worker: Worker) -> bool | None:
        if worker.process.poll() is not None:
            pytest.fail(f"worker {worker.name} exited early:\n{worker.output()}")
        shown = self.tv("show", worker.name, "--json")
        return True if shown.returncode == 0 and json.loads(shown.stdout)["code"] else None

    def close(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                worker.process.kill()
            worker.process.wait(timeout=PATIENCE)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every command and worker: a fresh store, quick polling."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("TABLEVAULT_")
    }
    environment.update(
        TABLEVAULT_HOME=str(tmp_path_factory.mktemp("home")),
        TABLEVAULT_POLL_INTERVAL="0.1",
        TABLEVAULT_HEARTBEAT_INTERVAL="0.2",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    return environment


@pytest.fixture(scope="module")
def tv(env: dict[str, str]) -> RunCli:
    """Run ``tablevault ARGS...`` as a subprocess; returns the completed process."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tablevault", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=PATIENCE,
        )

    return run


@pytest.fixture(scope="module")
def workers(
    tmp_path_factory: pytest.TempPathFactory, env: dict[str, str], tv: RunCli
) -> Iterator[Workers]:
    started = Workers(tmp_path_factory.mktemp("workers"), env, tv)
    yield started
    started.close()


@pytest.fixture(scope="module")
def shared_worker(workers: Workers) -> Worker:
    """One running worker that the read-only tests look at."""
    return workers.start()


def show(tv: RunCli, name: str) -> dict[str, Any]:
    shown = tv("show", name, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def wait_for_status(tv: RunCli, name: str, status: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        shown = show(tv, name)
        return shown if shown["process"]["status"] == status else None

    return wait_until(reached, f"{name} to be {status}")


def ps_row(tv: RunCli, name: str, *options: str) -> str:
    listed = tv("ps", *options)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if line.split()[:1] == [name]]
    assert len(rows) == 1, listed.stdout
    return rows[0]


def field(shown: str, label: str) -> str | None:
    """The value next to ``label`` in the output of ``tablevault show``."""
    found = re.search(rf"^{re.escape(label)}  +(.+)$", shown, re.MULTILINE)
    return found.group(1) if found else None


def wait_for_records(tv: RunCli, name: str, count: int) -> None:
    def appended() -> bool | None:
        listed = tv("records", "steps", "--process", name, "--json")
        assert listed.returncode == 0, listed.stderr
        return True if len(json.loads(listed.stdout)) >= count else None

    wait_until(appended, f"{count} records from {name}")


# Looking -------------------------------------------------------------------------------------


def test_ps_lists_a_running_worker_in_aligned_columns(tv: RunCli, shared_worker: Worker) -> None:
    # Given a worker looping over checkpoints

    # When a person lists the processes
    listed = tv("ps")

    # Then the header names every column and the worker's row says it runs, with its pid
    assert listed.returncode == 0, listed.stderr
    header = listed.stdout.splitlines()[0]
    assert header.split("  ")[0] == "NAME"
    for column in (
        "KIND",
        "STATUS",
        "USER",
        "HOST",
        "PID",
        "STARTED",
        "LAST CHECKPOINT",
        "CHECKPOINTS",
    ):
        assert column in header
    row = ps_row(tv, shared_worker.name)
    assert row.split()[1:3] == ["script", "running"]
    assert str(shared_worker.process.pid) in row.split()


def test_ps_json_is_a_list_of_process_records(tv: RunCli, shared_worker: Worker) -> None:
    # Given a running worker

    # When a script lists the processes as JSON
    listed = tv("ps", "--json")

    # Then it parses, and the worker's record is alive with no request open
    assert listed.returncode == 0, listed.stderr
    records = {record["name"]: record for record in json.loads(listed.stdout)}
    record = records[shared_worker.name]
    assert record["pid"] == shared_worker.process.pid
    assert record["status"] == "running"
    assert record["kind"] == "script"
    assert record["alive"] is True
    assert record["open_requests"] == []


def test_show_describes_the_worker_and_its_code(tv: RunCli, shared_worker: Worker) -> None:
    # Given a running worker

    # When a person shows it
    shown = tv("show", shared_worker.name)

    # Then its status, its description and the first line of its script are there
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert field(shown.stdout, "status") == "running"
    assert field(shown.stdout, "description") == "a worker for the CLI tests"
    assert "code: 1 item" in lines
    assert any(MARKER in line and " running " in line for line in lines)
    assert "requests: none" in lines


def test_show_json_holds_the_process_its_code_and_requests(
    tv: RunCli, shared_worker: Worker
) -> None:
    # Given a running worker

    # When a script shows it as JSON
    shown = tv("show", shared_worker.name, "--json")

    # Then it parses into the process record, its code items and its requests
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["process"]["name"] == shared_worker.name
    assert document["alive"] is True
    assert document["code_count"] == 1
    [item] = document["code"]
    assert item["kind"] == "script"
    assert item["status"] == "running"
    assert MARKER in item["source"]
    assert document["requests"] == []


def test_search_finds_the_worker_by_its_code(tv: RunCli, shared_worker: Worker) -> None:
    # Given a running worker whose script holds a marker

    # When a person searches for the marker
    found = tv("search", "--code", MARKER)

    # Then the worker is among the names printed
    assert found.returncode == 0, found.stderr
    assert shared_worker.name in found.stdout.splitlines()


def test_search_without_a_match_says_so(tv: RunCli, shared_worker: Worker) -> None:
    # Given a running worker

    # When a person searches for text no process ran
    found = tv("search", "--code", f"absent-{uuid.uuid4().hex}", "--name", shared_worker.name)

    # Then the command says nothing matched, and succeeds
    assert found.returncode == 0, found.stderr
    assert found.stdout == "no process matches\n"


def test_records_json_holds_what_the_worker_appended(tv: RunCli, shared_worker: Worker) -> None:
    # Given a worker that has appended a few steps
    wait_for_records(tv, shared_worker.name, 3)

    # When a script reads its table as JSON
    listed = tv("records", "steps", "--process", shared_worker.name, "--json")

    # Then it parses into the records, in append order
    assert listed.returncode == 0, listed.stderr
    records = json.loads(listed.stdout)
    assert [record["step"] for record in records] == list(range(len(records)))
    assert {record["worker"] for record in records} == {shared_worker.name}


def test_records_are_a_table_for_people(tv: RunCli, shared_worker: Worker) -> None:
    # Given a worker that has appended steps
    wait_for_records(tv, shared_worker.name, 2)

    # When a person reads its table
    listed = tv("records", "steps", "--process", shared_worker.name)

    # Then there is a column for each field and a row for each record
    assert listed.returncode == 0, listed.stderr
    header, first, *_ = listed.stdout.splitlines()
    assert header.split() == ["STEP", "WORKER"]
    assert first.split() == ["0", shared_worker.name]


# Controlling ---------------------------------------------------------------------------------


def test_pause_makes_show_and_ps_say_paused(tv: RunCli, workers: Workers) -> None:
    # Given a running worker
    worker = workers.start()

    # When a person pauses it
    paused = tv("pause", worker.name)

    # Then the request is printed, and once the worker reaches a checkpoint it is paused
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.startswith(f"pause '{worker.name}': request ")
    wait_for_status(tv, worker.name, "paused")
    assert field(tv("show", worker.name).stdout, "status") == "paused"
    assert ps_row(tv, worker.name).split()[2] == "paused"


def test_pause_json_prints_the_request(tv: RunCli, workers: Workers) -> None:
    # Given a running worker
    worker = workers.start()

    # When a script pauses it with --json
    paused = tv("pause", worker.name, "--json")

    # Then the request parses, with its id, its state and the CLI as requester
    assert paused.returncode == 0, paused.stderr
    request = json.loads(paused.stdout)
    assert isinstance(request["id"], int)
    assert request["state"] in ("pending", "acknowledged", "done")
    assert request["action"] == "pause"
    assert request["target_name"] == worker.name
    assert CLI_REQUESTER.fullmatch(request["requester"])


def test_ps_says_pause_requested_until_the_worker_reaches_a_checkpoint(
    tv: RunCli, workers: Workers
) -> None:
    # Given a worker that will not reach another checkpoint during the test
    worker = workers.start(pause_between=NEVER)

    # When a person pauses it
    paused = tv("pause", worker.name)

    # Then the request stays open, and ps says so next to the status
    assert paused.returncode == 0, paused.stderr
    assert "running (pause requested)" in ps_row(tv, worker.name)


def test_resume_makes_a_paused_worker_run_again(tv: RunCli, workers: Workers) -> None:
    # Given a paused worker
    worker = workers.start()
    assert tv("pause", worker.name).returncode == 0
    wait_for_status(tv, worker.name, "paused")

    # When a person resumes it
    resumed = tv("resume", worker.name)

    # Then it runs again, and ps shows no request left open
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith(f"resume '{worker.name}': request ")
    wait_for_status(tv, worker.name, "running")
    row = ps_row(tv, worker.name)
    assert row.split()[2] == "running"
    assert "requested" not in row


def test_stop_ends_the_worker_and_names_the_requester(tv: RunCli, workers: Workers) -> None:
    # Given a running worker
    worker = workers.start()

    # When a person stops it
    stopped = tv("stop", worker.name)

    # Then the worker exits at its next checkpoint, recorded as stopped by the CLI's user
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.startswith(f"stop '{worker.name}': request ")
    assert worker.process.wait(timeout=PATIENCE) == 3, worker.output()
    shown = tv("show", worker.name)
    assert field(shown.stdout, "status") == "stopped"
    ended = field(shown.stdout, "ended") or ""
    assert ", exit status 3, stopped by " in ended
    assert CLI_REQUESTER.fullmatch(ended.split(", stopped by ")[1])
    assert ps_row(tv, worker.name, "--all").split()[2] == "stopped"


def test_cleanup_reports_a_killed_worker_as_crashed(tv: RunCli, workers: Workers) -> None:
    # Given a worker killed with SIGKILL, which could record nothing about its end
    worker = workers.start()
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(timeout=PATIENCE)

    # When a person cleans up everything, however recent
    cleaned = tv("cleanup", "--interval", "0")

    # Then the worker is reported crashed, and is crashed from then on
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"crashed: {worker.name} (pid {worker.process.pid} on " in cleaned.stdout
    assert show(tv, worker.name)["process"]["status"] == "crashed"


# Errors --------------------------------------------------------------------------------------


def test_pausing_a_killed_worker_is_refused_on_one_line(tv: RunCli, workers: Workers) -> None:
    # Given a worker killed with SIGKILL, still registered as running
    worker = workers.start()
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(timeout=PATIENCE)

    # When a person asks it to pause
    result = tv("pause", worker.name)

    # Then it exits 1, saying on one line that the process is no longer running
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"tablevault: process '{worker.name}' is not running (it crashed)\n"


@pytest.mark.parametrize("command", ["show", "stop", "pause", "resume"])
def test_an_unknown_name_exits_1_with_one_line(tv: RunCli, command: str) -> None:
    # Given a name no process ever registered
    name = f"no-such-process-{uuid.uuid4().hex[:8]}"

    # When a command names it
    result = tv(command, name)

    # Then it exits 1 and says why on one line of stderr, without a traceback
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"tablevault: no process named '{name}' is registered\n"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["ps", "--bogus"],
        ["show"],
        ["cleanup", "--interval", "-1"],
        ["show", "x", "--limit", "0"],
    ],
    ids=[
        "no-command",
        "unknown-command",
        "unknown-option",
        "missing-name",
        "negative-interval",
        "zero-limit",
    ],
)
def test_bad_usage_exits_2_with_one_line(tv: RunCli, args: list[str]) -> None:
    # Given a command line tablevault cannot parse

    # When it runs
    result = tv(*args)

    # Then it exits 2 with one line on stderr that points at the help
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("tablevault")
    assert "--help" in result.stderr


# The demo ------------------------------------------------------------------------------------


def test_demo_is_handed_its_own_arguments(env: dict[str, str]) -> None:
    # Given a stand-in demo that prints its arguments and exits 4

    # When `tablevault demo` runs with options of the demo's own
    result = subprocess.run(
        [sys.executable, "-c", FAKE_DEMO, "demo", "--timeout", "5", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )

    # Then the demo gets them untouched, and its exit status is the command's
    assert result.returncode == 4, result.stderr
    assert json.loads(result.stdout) == ["--timeout", "5", "--help"]
