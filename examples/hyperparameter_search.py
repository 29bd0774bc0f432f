"""Search the L2 penalty of a digits classifier by running one child process per value.

Each child (examples/train_one.py) registers itself; tablevault links it to this process and
to this script as its parent, so ``tablevault search --parent-code spawn_experiment`` and
``Vault.query_process_list(parent_code_text="spawn_experiment")`` find them.

    python examples/hyperparameter_search.py [--epochs 15]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from tablevault import Vault

ALPHAS = (1e-4, 1e-2, 1.0)


def spawn_experiment(alpha: float, epochs: int) -> subprocess.Popen[bytes]:
    script = Path(__file__).with_name("train_one.py")
    return subprocess.Popen([sys.executable, str(script), str(alpha), "--epochs", str(epochs)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()

    vault = Vault(
        process_name="hyperparameter_search", description="L2 penalty search over digits MLPs"
    )
    children = [spawn_experiment(alpha, args.epochs) for alpha in ALPHAS]
    failed = [child.args for child in children if child.wait() != 0]
    results = vault.query_record_list("search_results")
    best = max(results, key=lambda row: row["accuracy"]) if results else None
    print(f"best: {best}")
    if failed:
        sys.exit(f"{len(failed)} experiment(s) failed")


if __name__ == "__main__":
    main()
