"""tablevault: see, pause, resume and stop Python processes at checkpoints, and record the code
they run.

    from tablevault import Vault
    vault = Vault(user_id="researcher", process_name="slow_experiment")
    for epoch in range(1000):
        train_epoch()
        vault.checkpoint_execution()

In IPython and Jupyter, ``%load_ext tablevault`` records every cell and adds the ``%tv_*``
magics.
"""

from __future__ import annotations

from typing import Any

from .client import VaultClient
from .errors import (
    EXIT_STOPPED,
    InvalidInputError,
    NameTakenError,
    ProcessNotFoundError,
    ProcessStateError,
    ScriptStopped,
    StopRequested,
    StoreError,
    StoreUnavailableError,
    TableVaultError,
)
from .vault import Vault, active_vault, checkpoint

__version__ = "0.1.0"

__all__ = [
    "EXIT_STOPPED",
    "InvalidInputError",
    "NameTakenError",
    "ProcessNotFoundError",
    "ProcessStateError",
    "ScriptStopped",
    "StopRequested",
    "StoreError",
    "StoreUnavailableError",
    "TableVaultError",
    "Vault",
    "VaultClient",
    "active_vault",
    "checkpoint",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext tablevault``: register the kernel, record every cell, add the magics."""
    from .ipython.extension import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext tablevault``: remove the hooks and the magics."""
    from .ipython.extension import unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "tablevault.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "tablevault"}]
