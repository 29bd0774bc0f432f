"""Reading the API is not user activity (idle culling still works); controlling is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .conftest import TableVaultAPI, Worker, unique


async def test_listing_leaves_last_activity_unchanged(
    api: TableVaultAPI, jp_serverapp: Any, start_worker: Callable[..., Worker]
) -> None:
    # Given a server with a process to show
    worker = start_worker(unique("watched"))
    web_app = jp_serverapp.web_app
    api_activity = web_app.settings.get("api_last_activity")
    last_activity = web_app.last_activity()

    # When a panel polls the list and the detail, including a failing read
    for _ in range(3):
        assert (await api.get("processes")).code == 200
        assert (await api.get("processes", params={"all": "1"})).code == 200
        assert (await api.get("processes", worker.name)).code == 200
        assert (await api.get("processes", "nobody")).code == 404

    # Then the server has seen no user activity
    assert web_app.settings.get("api_last_activity") == api_activity
    assert web_app.last_activity() == last_activity


async def test_a_control_request_is_user_activity(
    api: TableVaultAPI, jp_serverapp: Any, start_worker: Callable[..., Worker]
) -> None:
    worker = start_worker(unique("watched"))
    web_app = jp_serverapp.web_app
    last_activity = web_app.last_activity()

    reply = await api.post(worker.name, "pause")

    assert reply.code == 202
    assert web_app.last_activity() > last_activity
