"""What a checkpoint costs in a loop, against the same loop without one, in one process.

    python benchmarks/bench_checkpoint.py [--iterations 1000000]

Prints nanoseconds per iteration for: an empty loop (the baseline), a loop calling a no-op
function (what any call costs), ``vault.checkpoint_execution()`` with nothing pending, and
``tablevault.checkpoint()``; and each one's cost over the baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable


def per_iteration_ns(body: Callable[[int], None], iterations: int, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        body(iterations)
        samples.append((time.perf_counter_ns() - started) / iterations)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("TABLEVAULT_HOME", tempfile.mkdtemp(prefix="tablevault-bench-"))

    import tablevault
    from tablevault import Vault

    vault = Vault(process_name=f"bench-checkpoint-{os.getpid()}")

    def noop() -> None:
        return None

    def empty(n: int) -> None:
        for _ in range(n):
            pass

    def call(n: int) -> None:
        for _ in range(n):
            noop()

    def method(n: int) -> None:
        checkpoint = vault.checkpoint_execution
        for _ in range(n):
            checkpoint()

    def module_function(n: int) -> None:
        for _ in range(n):
            tablevault.checkpoint()

    baseline = per_iteration_ns(empty, args.iterations, args.repeats)
    print(f"{'loop':34} {'ns/iteration':>12} {'over baseline':>14}")
    print(f"{'empty loop (baseline)':34} {baseline:12.1f} {'':>14}")
    for label, body in (
        ("no-op function call", call),
        ("vault.checkpoint_execution()", method),
        ("tablevault.checkpoint()", module_function),
    ):
        cost = per_iteration_ns(body, args.iterations, args.repeats)
        print(f"{label:34} {cost:12.1f} {cost - baseline:+11.1f} ns")
    vault.close()


if __name__ == "__main__":
    main()
