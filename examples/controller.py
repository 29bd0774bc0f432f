"""Control the other examples from a script: the story of the product in twenty lines.

Start examples/train_digits.ipynb (in JupyterLab) and examples/ingest_breast_cancer.py first.
This script lists them, pauses the ingestion, looks at what it wrote, resumes it, and stops the
training once its test accuracy is good enough.

    python examples/controller.py [--target-accuracy 0.95]
"""

from __future__ import annotations

import argparse
import time

from tablevault import Vault


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-accuracy", type=float, default=0.95)
    args = parser.parse_args()

    vault = Vault(process_name="controller", description="pauses ingestion, stops training")
    for process in vault.list_processes():
        print(f"{process.name:24} {process.kind:9} {process.status:8} pid {process.pid}")

    vault.pause_execution("data_ingestion")
    time.sleep(2)
    batches = vault.query_record_list("ingested_batches")
    print(f"ingestion paused after {len(batches)} batches; last: {batches[-1:]}")
    vault.resume_execution("data_ingestion")

    while True:
        epochs = vault.query_record_list("digits_training")
        if epochs and epochs[-1]["accuracy"] >= args.target_accuracy:
            print(f"accuracy {epochs[-1]['accuracy']} at epoch {epochs[-1]['epoch']}: stopping")
            vault.stop_execution("train_digits")
            break
        time.sleep(0.5)


if __name__ == "__main__":
    main()
