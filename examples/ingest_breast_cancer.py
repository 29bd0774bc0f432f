"""Ingest a real CSV file in batches, with a checkpoint after each batch.

The file is the Wisconsin breast-cancer table that ships with scikit-learn. Each batch is
summarised and appended to the ``ingested_batches`` table; between batches the process may be
paused, resumed or stopped from elsewhere (the JupyterLab sidebar, ``tablevault pause
data_ingestion``, or examples/controller.py).

    python examples/ingest_breast_cancer.py [--batch-size 25] [--delay 1]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from importlib import resources

from tablevault import Vault


def read_rows() -> list[list[str]]:
    """The data rows: 30 measurements, then the class (0 malignant, 1 benign)."""
    text = resources.files("sklearn.datasets.data").joinpath("breast_cancer.csv").read_text()
    reader = csv.reader(text.splitlines())
    next(reader)  # the first line holds the row and column counts, not column names
    return list(reader)


def summarise(batch: list[list[str]], first_row: int) -> dict[str, float | int]:
    radii = [float(row[0]) for row in batch]
    malignant = sum(1 for row in batch if row[-1] == "0")
    return {
        "first_row": first_row,
        "rows": len(batch),
        "mean_radius": round(statistics.fmean(radii), 3),
        "malignant_share": round(malignant / len(batch), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument(
        "--delay",
        type=float,
        default=1.0,
        help="seconds per batch, standing in for a slow source; the default "
        "leaves time to click Pause in the sidebar",
    )
    args = parser.parse_args()

    vault = Vault(
        process_name="data_ingestion", description="breast-cancer CSV ingestion in batches"
    )
    rows = read_rows()
    for start in range(0, len(rows), args.batch_size):
        batch = rows[start : start + args.batch_size]
        vault.append_record("ingested_batches", summarise(batch, start))
        time.sleep(args.delay)
        vault.checkpoint_execution()
    print(f"ingested {len(rows)} rows")


if __name__ == "__main__":
    main()
