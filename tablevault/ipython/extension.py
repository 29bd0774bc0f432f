"""``%load_ext tablevault`` and ``%unload_ext tablevault``.

Loading registers the kernel as a ``notebook`` process (or keeps the registration a
``Vault(...)`` already made), records every cell from the loading cell on, adds the ``%tv_*``
magics, and names the vault ``vault`` in the user's namespace unless that name is taken.

The default name is the notebook's path when the front end tells it (see
:mod:`tablevault.ipython.naming`); a second kernel on the same notebook gets the path with a
suffix, such as ``analysis.ipynb [2]``. ``%tv_init NAME`` renames it.

Unloading ends the registration: the hooks and the magics go, and the run is recorded as
finished, as when the kernel shuts down (a ``vault`` variable stays, closed). Keeping the
registration while its cells are no longer recorded would show other processes a notebook
that seems idle while it runs. Loading again starts a new run.
"""

from __future__ import annotations

import logging
from typing import Any

from ..vault import Vault, active_vault
from .magics import TableVaultMagics

log = logging.getLogger(__name__)


def load(ipython: Any) -> None:
    """Register the kernel, record its cells, add the magics."""
    try:
        vault = Vault()
    except Exception as exc:
        # The magics still work without a registration, e.g. to control other processes.
        log.warning("tablevault could not register this kernel (%s); cells are not recorded", exc)
        log.debug("tablevault: registration failed", exc_info=True)
    else:
        # A `vault` left by an earlier %unload_ext is closed: replace it, not a user's own.
        current = ipython.user_ns.get("vault")
        if current is None or (isinstance(current, Vault) and current.closed):
            ipython.push({"vault": vault})
    ipython.register_magics(TableVaultMagics)


def unload(ipython: Any) -> None:
    """End the kernel's registration, remove the hooks and the magics."""
    vault = active_vault()
    if vault is not None and vault.kind == "notebook":
        vault.close()
    _remove_magics(ipython)


def _remove_magics(ipython: Any) -> None:
    manager = ipython.magics_manager
    for kind, names in TableVaultMagics.magics.items():
        for name in names:
            manager.magics[kind].pop(name, None)
    manager.registry.pop(TableVaultMagics.__name__, None)
