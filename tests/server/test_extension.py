"""The extension is found and enabled the way ``pip install`` sets it up.

The wheel copies ``jupyter-config/server-config/tablevault.json`` into
``etc/jupyter/jupyter_server_config.d``; here the same file is put in a directory named by
``JUPYTER_CONFIG_PATH``, and the package is imported from this checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

SHIPPED = REPO / "jupyter-config" / "server-config" / "tablevault.json"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_the_shipped_file_enables_the_extension() -> None:
    config = json.loads(SHIPPED.read_text())

    assert config == {"ServerApp": {"jpserver_extensions": {"tablevault": True}}}


def test_the_wheel_puts_the_config_file_where_jupyter_server_reads_it() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in Python 3.11 and later")

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    shared = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]

    assert shared["jupyter-config/server-config"] == "etc/jupyter/jupyter_server_config.d"


def test_jupyter_server_extension_list_shows_tablevault_enabled(tmp_path: Path) -> None:
    # Given a Jupyter config directory holding the file the wheel installs
    config_dir = tmp_path / "etc-jupyter"
    (config_dir / "jupyter_server_config.d").mkdir(parents=True)
    shutil.copy(SHIPPED, config_dir / "jupyter_server_config.d")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_PATH": str(config_dir),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "user-config"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }

    # When Jupyter lists the server extensions
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    # Then tablevault is enabled, and it loads
    listed = _ANSI.sub("", result.stdout + result.stderr)
    assert "tablevault enabled" in listed, listed
    assert re.search(r"tablevault \S+ OK", listed), listed
    assert "tablevault disabled" not in listed
