"""A kernel's default process name: the notebook's path when it can be known."""

from __future__ import annotations

import os
from pathlib import Path


def default_notebook_name() -> str:
    """The notebook's path as Jupyter or VS Code give it, else ``ipython-<pid>``.

    Jupyter sets ``JPY_SESSION_NAME`` in the kernel's environment; VS Code puts
    ``__vsc_ipynb_file__`` in the user namespace. papermill, nbconvert and the IPython terminal
    give neither.
    """
    session = os.environ.get("JPY_SESSION_NAME", "").strip()
    if session:
        return session
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    vscode_file = shell.user_ns.get("__vsc_ipynb_file__") if shell is not None else None
    if isinstance(vscode_file, str) and vscode_file:
        return _relative_to_home(vscode_file)
    return f"ipython-{os.getpid()}"


def _relative_to_home(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.home()))
    except ValueError:
        return path
