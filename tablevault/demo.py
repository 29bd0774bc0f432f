"""The main job, headless: a real training notebook and a real ingestion script, controlled.

``tablevault demo`` (or ``python -m tablevault.demo``) runs examples/train_digits.ipynb in a
real kernel and examples/ingest_breast_cancer.py as a real process, then, as a person would
from the sidebar: pauses the ingestion and checks that it stops progressing, resumes it,
stops the training once its accuracy is good enough and checks that the kernel kept its
variables, and runs a hyper-parameter search whose children appear as its children. It
prints a timeline of requests, acknowledgements, statuses and records, and exits non-zero
if any step did not happen.

The demo uses a fresh store in a temporary folder unless ``--home`` names one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .client import VaultClient
from .config import TableVaultSettings
from .errors import EXIT_STOPPED
from .identity import current_user, host_name
from .store import ProcessRecord, Request

T = TypeVar("T")

TRAINING = "train_digits"
INGESTION = "data_ingestion"
SEARCH = "hyperparameter_search"


class DemoFailure(Exception):
    """A step of the story did not happen."""


def find_examples() -> Path:
    """The examples folder: beside the package in a source checkout, or installed with it."""
    for candidate in (
        Path(__file__).resolve().parent.parent / "examples",
        Path(sys.prefix) / "share" / "tablevault" / "examples",
    ):
        if (candidate / "train_digits.ipynb").is_file():
            return candidate
    raise DemoFailure("cannot find the examples folder (examples/train_digits.ipynb)")


class Timeline:
    """Prints each event as it happens, with the seconds since the story began."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.events: list[tuple[float, str, str]] = []

    def add(self, actor: str, what: str) -> None:
        at = time.monotonic() - self.started
        self.events.append((at, actor, what))
        print(f"{at:7.1f}s  {actor:24}  {what}", flush=True)


def wait_for(what: str, check: Callable[[], T | None], timeout: float) -> T:
    """Poll ``check`` until it returns something truthy; DemoFailure after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise DemoFailure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


class Story:
    """The demo's steps, sharing one store, one kernel and the child processes."""

    def __init__(
        self, examples: Path, env: dict[str, str], timeout: float, target_accuracy: float
    ) -> None:
        self.examples = examples
        self.env = env
        self.timeout = timeout
        self.target_accuracy = target_accuracy
        self.timeline = Timeline()
        settings = TableVaultSettings(home=env["TABLEVAULT_HOME"])
        self.client = VaultClient(
            settings=settings, requester=f"{current_user()}@{host_name()} (demo)"
        )
        self.kernel: Any = None
        self.kernel_client: Any = None
        self.processes: list[subprocess.Popen[bytes]] = []

    # Helpers -------------------------------------------------------------------------------

    def process(self, name: str, *statuses: str) -> ProcessRecord | None:
        run = self.client.store.get_run(name=name)
        return run if run is not None and (not statuses or run.status in statuses) else None

    def records(self, table: str) -> list[dict[str, Any]]:
        return self.client.query_record_list(table)

    def follow(self, request: Request) -> None:
        """Report the request, then its acknowledgement and completion by the target."""
        self.timeline.add(
            "you", f"{request.action} {request.target_name}: request #{request.id} {request.state}"
        )
        seen = {request.state}
        for state in ("acknowledged", "done"):

            def reached(state: str = state) -> Request | None:
                for current in self.client.store.recent_requests(request.run_id):
                    if current.id == request.id and current.state in (state, "done"):
                        return current
                return None

            current = wait_for(f"request #{request.id} to be {state}", reached, self.timeout)
            if current.state not in seen:
                seen.add(current.state)
                self.timeline.add(request.target_name, f"request #{request.id} {current.state}")

    def run_cell(self, source: str, *, wait: bool = True) -> str:
        msg_id = self.kernel_client.execute(source, store_history=True)
        if wait:
            reply = self.kernel_client.get_shell_msg(timeout=self.timeout)
            if reply["content"]["status"] != "ok":
                raise DemoFailure(f"cell failed: {reply['content'].get('evalue')}")
        return msg_id

    def evaluate(self, expression: str) -> str:
        msg_id = self.kernel_client.execute("", user_expressions={"value": expression})
        reply = self.kernel_client.get_shell_msg(timeout=self.timeout)
        if reply["parent_header"].get("msg_id") != msg_id:
            raise DemoFailure("the kernel answered another request")
        value = reply["content"]["user_expressions"]["value"]
        if value.get("status") != "ok":
            raise DemoFailure(f"cannot evaluate {expression!r} in the kernel")
        return value["data"]["text/plain"]

    # The steps -----------------------------------------------------------------------------

    def start_training(self) -> str:
        import nbformat
        from jupyter_client.manager import KernelManager

        notebook = nbformat.read(self.examples / "train_digits.ipynb", as_version=4)
        cells = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
        # Local sockets: the kernel is on this machine only, and TCP would make it warn.
        sockets = Path(self.env["TABLEVAULT_HOME"]) / "kernel"
        self.kernel = KernelManager(kernel_name="python3", transport="ipc", ip=str(sockets))
        self.kernel.start_kernel(env=self.env, cwd=str(self.examples))
        self.kernel_client = self.kernel.client()
        self.kernel_client.start_channels()
        self.kernel_client.wait_for_ready(timeout=self.timeout)
        for source in cells[:2]:
            self.run_cell(source)
        training = self.run_cell(cells[2], wait=False)
        run = wait_for(
            "the training notebook to register", lambda: self.process(TRAINING), self.timeout
        )
        self.timeline.add(
            TRAINING, f"running ({run.kind}, pid {run.pid}): training loop started in a kernel"
        )
        return training

    def start_ingestion(self) -> None:
        script = self.examples / "ingest_breast_cancer.py"
        self.processes.append(
            subprocess.Popen(
                [sys.executable, str(script), "--delay", "0.25"],
                env=self.env,
                stdout=subprocess.DEVNULL,
            )
        )
        run = wait_for(
            "the ingestion script to register", lambda: self.process(INGESTION), self.timeout
        )
        self.timeline.add(INGESTION, f"running ({run.kind}, pid {run.pid})")

    def pause_and_resume_ingestion(self) -> None:
        wait_for("a first ingested batch", lambda: self.records("ingested_batches"), self.timeout)
        self.follow(self.client.pause_execution(INGESTION))
        wait_for(
            "ingestion to report paused", lambda: self.process(INGESTION, "paused"), self.timeout
        )
        held = len(self.records("ingested_batches"))
        time.sleep(1.5)
        if len(self.records("ingested_batches")) != held:
            raise DemoFailure("ingestion kept writing batches while paused")
        last = self.records("ingested_batches")[-1]
        batches = "batch" if held == 1 else "batches"
        self.timeline.add(
            INGESTION,
            f"paused after {held} {batches}; none for 1.5 s; last "
            f"batch: rows {last['first_row']}-"
            f"{last['first_row'] + last['rows'] - 1}, "
            f"malignant share {last['malignant_share']}",
        )
        self.follow(self.client.resume_execution(INGESTION))
        wait_for(
            "ingestion to write again",
            lambda: len(self.records("ingested_batches")) > held,
            self.timeout,
        )
        self.timeline.add(
            INGESTION, f"running again; {len(self.records('ingested_batches'))} batches"
        )

    def stop_training_when_good(self, training_msg: str) -> None:
        def good_epoch() -> dict[str, Any] | None:
            epochs = self.records("digits_training")
            return epochs[-1] if epochs and epochs[-1]["accuracy"] >= self.target_accuracy else None

        epoch = wait_for(f"test accuracy {self.target_accuracy}", good_epoch, self.timeout)
        self.timeline.add(
            TRAINING, f"epoch {epoch['epoch']}: accuracy {epoch['accuracy']}, loss {epoch['loss']}"
        )
        self.follow(self.client.stop_execution(TRAINING))
        reply = self.kernel_client.get_shell_msg(timeout=self.timeout)
        if reply["parent_header"].get("msg_id") != training_msg:
            raise DemoFailure("unexpected kernel reply while waiting for the training cell")

        def stopped_cell() -> Any:
            cell = self.client.query_process_code(TRAINING)[-1]
            return cell if cell.status == "stopped" else None

        cell = wait_for("the training cell to be recorded as stopped", stopped_cell, self.timeout)
        epochs_done = int(self.evaluate("epochs_done"))
        recorded = len(self.records("digits_training"))
        if epochs_done != recorded:
            raise DemoFailure(f"the kernel says {epochs_done} epochs, the table {recorded}")
        self.timeline.add(
            TRAINING,
            f"cell {cell.index} stopped; the kernel is alive and "
            f"keeps epochs_done={epochs_done} and the model",
        )

    def run_search(self) -> None:
        script = self.examples / "hyperparameter_search.py"
        search = subprocess.run(
            [sys.executable, str(script), "--epochs", "6"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=self.timeout,
        )
        if search.returncode != 0:
            raise DemoFailure(f"the search failed: {search.stderr.strip()[-300:]}")
        children = self.client.query_process_list(parent_code_text="spawn_experiment")
        if len(children) != 3:
            raise DemoFailure(f"expected 3 children of the search, found {children}")
        for name in sorted(children):
            child = self.client.get_process(name)
            if child.parent_name != SEARCH:
                raise DemoFailure(f"{name} names {child.parent_name} as parent")
            self.timeline.add(
                name,
                f"{child.status}; child of {child.parent_name}, code item {child.parent_index}",
            )
        self.timeline.add(SEARCH, search.stdout.strip().splitlines()[-1])

    def finish_ingestion(self) -> None:
        for process in self.processes:
            code = process.wait(timeout=self.timeout)
            if code not in (0, EXIT_STOPPED):
                raise DemoFailure(f"ingestion exited with status {code}")
        run = self.process(INGESTION)
        if run is None or run.status != "finished":
            raise DemoFailure(f"ingestion ended {run.status if run else 'unregistered'}")
        total = sum(batch["rows"] for batch in self.records("ingested_batches"))
        self.timeline.add(INGESTION, f"finished: {total} rows, no batch lost")

    def shut_down_training(self) -> None:
        kernel, self.kernel = self.kernel, None
        self.kernel_client.stop_channels()
        kernel.shutdown_kernel(now=False)
        run = wait_for(
            "the kernel's run to end", lambda: self.process(TRAINING, "finished"), self.timeout
        )
        self.timeline.add(TRAINING, f"kernel shut down; run {run.status}")

    def close(self) -> None:
        """Leave nothing running, whatever step failed."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        if self.kernel is not None:
            self.kernel_client.stop_channels()
            self.kernel.shutdown_kernel(now=True)

    def run(self) -> None:
        training = self.start_training()
        self.start_ingestion()
        self.pause_and_resume_ingestion()
        self.stop_training_when_good(training)
        self.run_search()
        self.finish_ingestion()
        self.shut_down_training()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tablevault demo", description=__doc__.split("\n")[0])
    parser.add_argument("--home", help="store folder (default: a new temporary folder)")
    parser.add_argument("--target-accuracy", type=float, default=0.9)
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds each step may take before the demo fails",
    )
    args = parser.parse_args(argv)

    home = args.home or tempfile.mkdtemp(prefix="tablevault-demo-")
    env = {
        **os.environ,
        "TABLEVAULT_HOME": home,
        "TABLEVAULT_POLL_INTERVAL": "0.1",
        "TABLEVAULT_HEARTBEAT_INTERVAL": "1",
    }
    env.pop("TABLEVAULT_ARANGO_URL", None)
    env.pop("TABLEVAULT_PARENT", None)
    print(f"tablevault demo: store in {home}\n")
    story: Story | None = None
    try:
        story = Story(find_examples(), env, args.timeout, args.target_accuracy)
        story.run()
    except DemoFailure as failure:
        print(f"\nFAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        if story is not None:
            story.close()
    print(f"\nevery step happened; look again with: TABLEVAULT_HOME={home} tablevault ps --all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
