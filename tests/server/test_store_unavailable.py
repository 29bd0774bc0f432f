"""A store that cannot be opened: every route answers 503, and the server recovers by itself.

``TABLEVAULT_HOME`` points below a regular file here, so the SQLite store cannot be created
when the server starts, as with an unmounted share or an ArangoDB server not up yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import TableVaultAPI


@pytest.fixture
def tablevault_home(tmp_path: Path) -> Path:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be\n")
    return blocker / "vault"


@pytest.mark.parametrize(
    ("method", "segments"),
    [
        ("GET", ("processes",)),
        ("GET", ("processes", "dir/a.ipynb")),
        ("POST", ("processes", "dir/a.ipynb", "stop")),
    ],
    ids=["list", "detail", "stop"],
)
async def test_every_route_answers_503(
    api: TableVaultAPI, method: str, segments: tuple[str, ...]
) -> None:
    reply = await api.fetch(method, *segments)

    assert reply.code == 503
    assert set(reply.body) == {"message", "reason"}
    assert "not-a-folder" in reply.body["message"]


async def test_the_store_opens_once_it_can(
    api: TableVaultAPI, tablevault_home: Path, service: Any
) -> None:
    # Given a server that started while its store could not be opened
    assert (await api.get("processes")).code == 503

    # When the obstacle goes away
    tablevault_home.parent.unlink()

    # Then the next call opens the store, without a restart
    reply = await api.get("processes")
    assert reply.code == 200
    assert reply.body == {"processes": []}
    assert (tablevault_home / "tablevault.sqlite3").exists()
