"""jupyter_server's Authorizer decides on the ``tablevault`` resource: read to list, write to act.

The server here runs with an authorizer that lets a user read tablevault but not write to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from jupyter_server.auth import Authorizer

from .conftest import TableVaultAPI, Worker, unique


class ReadOnlyTableVault(Authorizer):
    """Allows everything but writing to tablevault, and remembers what it was asked."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asked: list[tuple[str, str]] = []

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        self.asked.append((action, resource))
        return not (resource == "tablevault" and action == "write")


@pytest.fixture
def tablevault_config() -> dict[str, Any]:
    return {"ServerApp": {"authorizer_class": ReadOnlyTableVault}}


async def test_reading_is_asked_as_read_on_tablevault(
    api: TableVaultAPI, jp_serverapp: Any
) -> None:
    reply = await api.get("processes")

    assert reply.code == 200
    assert ("read", "tablevault") in jp_serverapp.authorizer.asked


async def test_a_user_without_write_permission_cannot_control(
    api: TableVaultAPI, start_worker: Callable[..., Worker], jp_serverapp: Any
) -> None:
    # Given a process, and a user who may read but not write tablevault
    worker = start_worker(unique("guarded"), "idle")

    # When that user asks it to stop
    reply = await api.post(worker.name, "stop")

    # Then the request is refused before it reaches the store
    assert reply.code == 403
    assert "tablevault" in reply.body["message"]
    assert ("write", "tablevault") in jp_serverapp.authorizer.asked
    assert (await api.process(worker.name))["requests"] == []
