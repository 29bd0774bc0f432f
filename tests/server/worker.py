"""A process for the server tests to watch and control.

    python worker.py NAME [checkpoints|idle]

It registers under NAME, prints ``ready <run_id>``, then loops forever. With ``checkpoints`` (the
default) it reaches a checkpoint every 20 ms, so pause, resume and stop take effect at once;
``idle`` never reaches one, so a request addressed to it stays pending.
"""

from __future__ import annotations

import sys
import time

from tablevault import Vault


def main() -> None:
    name = sys.argv[1]
    checkpoints = (sys.argv[2] if len(sys.argv) > 2 else "checkpoints") == "checkpoints"
    vault = Vault(process_name=name)
    assert vault.run is not None, "the worker could not register"
    print("ready", vault.run.run_id, flush=True)
    while True:
        time.sleep(0.02)
        if checkpoints:
            vault.checkpoint_execution()


if __name__ == "__main__":
    main()
