"""Train one small network on scikit-learn's digits with a given L2 penalty.

Started by examples/hyperparameter_search.py; it registers as its own process and learns
its parent (the search, and the line of code that started it) from the environment.

    python examples/train_one.py ALPHA [--epochs 15]
"""

from __future__ import annotations

import argparse
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from tablevault import Vault


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("alpha", type=float)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()

    vault = Vault(
        process_name=f"experiment_alpha_{args.alpha:g}",
        description=f"digits MLP, alpha={args.alpha:g}",
    )
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data / 16.0, digits.target, test_size=0.25, random_state=0
    )
    model = MLPClassifier(hidden_layer_sizes=(64,), alpha=args.alpha, random_state=0)
    warnings.simplefilter("ignore", ConvergenceWarning)
    for epoch in range(args.epochs):
        model.partial_fit(x_train, y_train, classes=list(range(10)))
        vault.append_record(
            "search_results",
            {
                "alpha": args.alpha,
                "epoch": epoch,
                "loss": round(model.loss_, 4),
                "accuracy": round(model.score(x_test, y_test), 4),
            },
        )
        vault.checkpoint_execution()


if __name__ == "__main__":
    main()
