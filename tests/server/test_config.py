"""Jupyter's config chooses the store: ``c.TableVaultSettings`` wins over the environment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import TableVaultAPI, Worker, unique


@pytest.fixture
def configured_home(tmp_path: Path) -> Path:
    return tmp_path / "configured"


@pytest.fixture
def tablevault_config(configured_home: Path) -> dict[str, Any]:
    return {"TableVaultSettings": {"home": str(configured_home)}}


async def test_the_server_reads_the_store_its_config_names(
    api: TableVaultAPI,
    service: Any,
    configured_home: Path,
    tablevault_home: Path,
    start_worker: Callable[..., Worker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a server configured with a home other than TABLEVAULT_HOME, and a process
    # registered in the configured one
    monkeypatch.setenv("TABLEVAULT_HOME", str(configured_home))
    worker = start_worker(unique("configured"))

    # When the list is read
    reply = await api.get("processes")

    # Then the server used the configured store, and left TABLEVAULT_HOME alone
    assert service.settings.sqlite_path == configured_home / "tablevault.sqlite3"
    assert [process["name"] for process in reply.body["processes"]] == [worker.name]
    assert not tablevault_home.exists()
