"""The headless demo: the main job on real input, end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    home = tmp_path_factory.mktemp("demo-store")
    env = {key: value for key, value in os.environ.items() if not key.startswith("TABLEVAULT_")}
    return subprocess.run(
        [sys.executable, "-m", "tablevault", "demo", "--home", str(home)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_demo_reports_every_step_and_succeeds(
    demo_run: subprocess.CompletedProcess[str],
) -> None:
    # Given the demo run on the embedded store
    output = demo_run.stdout
    # Then it exited 0 and its timeline shows each step of the story
    assert demo_run.returncode == 0, demo_run.stdout + demo_run.stderr
    lines = output.splitlines()
    for actor, step in (
        ("you", "pause data_ingestion: request #"),
        ("data_ingestion", "acknowledged"),
        ("data_ingestion", "paused after"),
        ("data_ingestion", "running again"),
        ("you", "stop train_digits: request #"),
        ("train_digits", "stopped; the kernel is alive"),
        ("experiment_alpha_1", "child of hyperparameter_search"),
        ("data_ingestion", "finished: 569 rows, no batch lost"),
        ("train_digits", "kernel shut down; run finished"),
    ):
        assert any(f" {actor} " in line and step in line for line in lines), (
            f"no line of {actor} saying {step!r} in:\n{output}"
        )
    assert "every step happened" in output


def test_the_demo_fails_loudly_when_a_step_cannot_happen(tmp_path: Path) -> None:
    # Given a demo whose training can never reach its target accuracy in time
    env = {key: value for key, value in os.environ.items() if not key.startswith("TABLEVAULT_")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tablevault",
            "demo",
            "--home",
            str(tmp_path),
            "--target-accuracy",
            "1.01",
            "--timeout",
            "20",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Then it exits non-zero and names the step that did not happen
    assert run.returncode == 1
    assert "FAILED: timed out after 20 s waiting for test accuracy 1.01" in run.stderr
