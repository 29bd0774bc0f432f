"""What ``pip install .`` puts on a machine: a prebuilt panel, the server switched on, examples.

JupyterLab finds a prebuilt extension in share/jupyter/labextensions without ``jupyter lab
build``, and jupyter_server reads etc/jupyter/jupyter_server_config.d at start-up; the wheel
must carry both, or a fresh install shows no panel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-w", str(out), "-q"],
        check=True,
        timeout=900,
    )
    (built,) = out.glob("tablevault-*.whl")
    return zipfile.ZipFile(built)


def data_files(wheel: zipfile.ZipFile) -> dict[str, str]:
    prefix = next(
        name.split("/data/")[0] + "/data/" for name in wheel.namelist() if "/data/" in name
    )
    return {name[len(prefix) :]: name for name in wheel.namelist() if name.startswith(prefix)}


def test_the_wheel_ships_the_prebuilt_panel(wheel: zipfile.ZipFile) -> None:
    # Given the wheel pip builds from the source tree
    files = data_files(wheel)
    # Then it holds the built extension where JupyterLab looks for prebuilt ones
    base = "share/jupyter/labextensions/tablevault/"
    meta = json.loads(wheel.read(files[base + "package.json"]))
    assert meta["name"] == "tablevault"
    assert meta["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
    assert base + meta["jupyterlab"]["_build"]["load"] in files
    assert base + "schemas/tablevault/plugin.json" in files


def test_the_wheel_enables_the_server_extension(wheel: zipfile.ZipFile) -> None:
    files = data_files(wheel)
    config = json.loads(wheel.read(files["etc/jupyter/jupyter_server_config.d/tablevault.json"]))
    assert config == {"ServerApp": {"jpserver_extensions": {"tablevault": True}}}


def test_the_wheel_carries_the_examples_the_demo_runs(wheel: zipfile.ZipFile) -> None:
    files = data_files(wheel)
    for example in (
        "train_digits.ipynb",
        "ingest_breast_cancer.py",
        "hyperparameter_search.py",
        "train_one.py",
    ):
        assert f"share/tablevault/examples/{example}" in files
