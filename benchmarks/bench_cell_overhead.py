"""What recording costs a notebook: the round trip of a trivial cell, with and without tablevault.

    python benchmarks/bench_cell_overhead.py [--cells 2000] [--gap 0]

Starts two real kernels on a fresh store, one with ``%load_ext tablevault`` and one without,
and sends them the same trivial cell in turn, one kernel then the other, so that both see the
same machine load. A round trip is timed from sending the execute request to receiving its
reply, as a front end sees it; ``--gap`` waits between cells, as a person or "Run All" would.

Prints, for each kernel, the median and 90th percentile round trip and the CPU time the
kernel process spent per cell (all its threads: tablevault writes its records on a thread of
its own, after the cell). The CPU figure is the steadier one on a busy machine. Ends by
checking that every cell was recorded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from jupyter_client import BlockingKernelClient, KernelManager

REPO_ROOT = Path(__file__).resolve().parents[1]
CELL = "x = 1"


def start_kernel(env: dict[str, str]) -> tuple[KernelManager, BlockingKernelClient]:
    manager = KernelManager(kernel_name="python3")
    with open(os.devnull, "wb") as quiet:
        manager.start_kernel(
            env=env,
            extra_arguments=["--HistoryManager.hist_file=:memory:"],
            stdout=quiet,
            stderr=quiet,
        )
    client = manager.blocking_client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    return manager, client


def round_trip_ns(client: BlockingKernelClient, code: str) -> tuple[int, dict[str, Any]]:
    """Send one cell; the time until its reply, and the reply (the kernel is idle after)."""
    started = time.perf_counter_ns()
    msg_id = client.execute(code, stop_on_error=False)
    while True:
        reply = client.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    elapsed = time.perf_counter_ns() - started
    # Read this cell's output up to its idle status, untimed, so that none is left queued.
    while True:
        message = client.get_iopub_msg(timeout=30)
        if (
            message["parent_header"].get("msg_id") == msg_id
            and message["msg_type"] == "status"
            and message["content"]["execution_state"] == "idle"
        ):
            return elapsed, reply["content"]


def recorded_cells(client: BlockingKernelClient) -> int:
    """How many cells the kernel's vault has recorded, asked without running a cell."""
    expression = "len(vault.query_process_code(vault.process_name))"
    msg_id = client.execute("", silent=True, user_expressions={"n": expression})
    while True:
        reply = client.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            return int(reply["content"]["user_expressions"]["n"]["data"]["text/plain"])


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2000, help="timed cells per kernel")
    parser.add_argument("--gap", type=float, default=0.0, help="seconds between two cells")
    parser.add_argument("--warmup", type=int, default=200, help="untimed cells per kernel")
    args = parser.parse_args()

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TABLEVAULT_", "JPY_SESSION_NAME"))
    }
    env.update(
        TABLEVAULT_HOME=tempfile.mkdtemp(prefix="tablevault-bench-"),
        IPYTHONDIR=tempfile.mkdtemp(prefix="tablevault-bench-ipython-"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    )
    kernels = {label: start_kernel(env) for label in ("without tablevault", "with tablevault")}
    recorded_client = kernels["with tablevault"][1]
    try:
        loaded = round_trip_ns(recorded_client, "%load_ext tablevault")[1]
        if loaded["status"] != "ok":
            raise SystemExit(f"%load_ext tablevault failed: {loaded.get('evalue')}")
        samples: dict[str, list[float]] = {label: [] for label in kernels}
        cpu: dict[str, float] = {}
        for _, client in kernels.values():
            for _ in range(args.warmup):
                round_trip_ns(client, CELL)
        processes = {
            label: psutil.Process(manager.provisioner.pid)
            for label, (manager, _) in kernels.items()
        }
        cpu_before = {label: sum(process.cpu_times()[:2]) for label, process in processes.items()}
        for _ in range(args.cells):
            for label, (_, client) in kernels.items():
                samples[label].append(round_trip_ns(client, CELL)[0] / 1000)
                time.sleep(args.gap)
        time.sleep(0.5)  # the last records are written after a short delay
        for label, process in processes.items():
            cpu[label] = (sum(process.cpu_times()[:2]) - cpu_before[label]) / args.cells * 1e6

        print(f"{args.cells} cells per kernel ({CELL!r}), taking turns, {args.gap} s apart")
        print(f"{'kernel':20} {'median µs':>10} {'p90 µs':>10} {'CPU µs/cell':>12}")
        for label, values in samples.items():
            print(
                f"{label:20} {statistics.median(values):10.0f} "
                f"{percentile(values, 0.9):10.0f} {cpu[label]:12.0f}"
            )
        base, recorded = samples["without tablevault"], samples["with tablevault"]
        added_median = statistics.median(recorded) - statistics.median(base)
        added_p90 = percentile(recorded, 0.9) - percentile(base, 0.9)
        print(
            f"added per cell: {added_median:+.0f} µs median round trip, {added_p90:+.0f} µs "
            f"p90 (ratio {statistics.median(recorded) / statistics.median(base):.2f}); "
            f"{cpu['with tablevault'] - cpu['without tablevault']:+.0f} µs CPU"
        )

        # Let the writer catch up, then check that every cell was recorded. The count is
        # asked silently: silent requests are not recorded themselves.
        expected = 1 + args.warmup + args.cells
        deadline = time.monotonic() + 30
        while (counted := recorded_cells(recorded_client)) < expected:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        print(f"cells recorded by the tablevault kernel: {counted} of {expected}")
    finally:
        for manager, client in kernels.values():
            client.stop_channels()
            manager.shutdown_kernel(now=True)


if __name__ == "__main__":
    main()
