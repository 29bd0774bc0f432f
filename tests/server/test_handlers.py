"""Every route against real worker processes: listing, detail, control, and each error code."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

import tablevault.server
from tablevault.errors import EXIT_STOPPED
from tablevault.identity import host_name

from .conftest import TableVaultAPI, Worker, eventually, unique

StartWorker = Callable[..., Worker]


async def _status_becomes(api: TableVaultAPI, name: str, status: str) -> None:
    async def check() -> bool:
        return (await api.process(name))["status"] == status

    await eventually(check, what=f"{name} becoming {status}")


def _by_name(processes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {process["name"]: process for process in processes}


# Listing ---------------------------------------------------------------------------------------


async def test_list_is_empty_without_processes(jp_fetch: Any, service: Any) -> None:
    # When nothing ever registered
    response = await jp_fetch("tablevault", "api", "processes")

    # Then the list is empty, as JSON
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(response.body) == {"processes": []}


async def test_list_shows_a_live_process_with_its_resources(
    api: TableVaultAPI, start_worker: StartWorker
) -> None:
    # Given a worker running on this host
    worker = start_worker(unique("train"))

    # When the list is read twice (CPU share needs two looks)
    first = _by_name((await api.get("processes")).body["processes"])[worker.name]
    second = _by_name((await api.get("processes")).body["processes"])[worker.name]

    # Then the process is there, alive, with its code item and memory, and then its CPU
    assert first["run_id"] == worker.run_id
    assert first["pid"] == worker.proc.pid
    assert first["host"] == host_name()
    assert first["kind"] == "script"
    assert first["status"] == "running"
    assert first["alive"] is True
    assert first["pending_request"] is None
    assert first["current_item"]["kind"] == "script"
    assert first["current_item"]["status"] == "running"
    assert first["memory_rss"] > 0
    assert first["cpu_percent"] is None
    assert isinstance(second["cpu_percent"], float)


async def test_list_shows_the_pending_request(
    api: TableVaultAPI, start_worker: StartWorker
) -> None:
    # Given a worker that never reaches a checkpoint, asked to stop
    worker = start_worker(unique("stuck"), "idle")
    sent = await api.post(worker.name, "stop")

    # When the list is read
    listed = _by_name((await api.get("processes")).body["processes"])[worker.name]

    # Then the stop shows as its pending request
    assert listed["status"] == "running"
    assert listed["pending_request"]["id"] == sent.body["request"]["id"]
    assert listed["pending_request"]["action"] == "stop"
    assert listed["pending_request"]["state"] in ("pending", "acknowledged")


@pytest.mark.parametrize("flag", ["1", "true"])
async def test_list_all_includes_ended_processes(
    api: TableVaultAPI, start_worker: StartWorker, flag: str
) -> None:
    # Given a worker that ended after a stop
    worker = start_worker(unique("done"))
    await api.post(worker.name, "stop")
    assert await worker.exit_code() == EXIT_STOPPED

    # When live processes, then all processes, are listed
    live = _by_name((await api.get("processes")).body["processes"])
    everything = _by_name((await api.get("processes", params={"all": flag})).body["processes"])

    # Then only the full list has it, ended and not alive
    assert worker.name not in live
    ended = everything[worker.name]
    assert ended["status"] == "stopped"
    assert ended["alive"] is False
    assert ended["ended_at"] is not None
    assert ended["cpu_percent"] is None and ended["memory_rss"] is None


async def test_a_killed_process_is_listed_as_crashed(
    api: TableVaultAPI, start_worker: StartWorker
) -> None:
    # Given a worker killed without a chance to record its end
    worker = start_worker(unique("killed"))
    os.kill(worker.proc.pid, signal.SIGKILL)
    await worker.exit_code()

    # When the list is read
    listed = _by_name((await api.get("processes")).body["processes"])[worker.name]

    # Then it shows as crashed, with nothing running
    assert listed["alive"] is False
    assert listed["status"] == "crashed"
    assert listed["current_item"] is None
    assert listed["memory_rss"] is None


async def test_list_rejects_an_unknown_all_value(api: TableVaultAPI) -> None:
    reply = await api.get("processes", params={"all": "yes"})

    assert reply.code == 400
    assert "all" in reply.body["message"]


# One process -----------------------------------------------------------------------------------


async def test_detail_of_a_notebook_path_sent_as_one_segment(
    api: TableVaultAPI, start_worker: StartWorker
) -> None:
    # Given a process named like a notebook path
    name = f"{unique('dir')}/a b.ipynb"
    worker = start_worker(name)
    await api.post(name, "pause")

    # When its detail is read with the slash sent as %2F
    assert "%2F" in api.path("processes", name)
    reply = await api.get("processes", name)

    # Then the name arrived whole, with the code it runs and the request it got
    assert reply.code == 200
    assert reply.body["name"] == name
    assert reply.body["run_id"] == worker.run_id
    assert [item["kind"] for item in reply.body["code_items"]] == ["script"]
    assert "import" in reply.body["code_items"][0]["source"]
    assert [request["action"] for request in reply.body["requests"]] == ["pause"]


async def test_detail_of_an_unknown_process_is_404(jp_fetch: Any, service: Any) -> None:
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("tablevault", "api", "processes", "nobody")

    assert caught.value.code == 404
    body = json.loads(caught.value.response.body)
    assert "nobody" in body["message"]
    assert set(body) == {"message", "reason"}


async def test_an_error_message_keeps_a_percent_sign(api: TableVaultAPI) -> None:
    reply = await api.get("processes", "100% done %s")

    assert reply.code == 404
    assert "100% done %s" in reply.body["message"]


async def test_detail_rejects_a_name_with_control_characters(api: TableVaultAPI) -> None:
    reply = await api.get("processes", "bad\x07name")

    assert reply.code == 400
    assert "control characters" in reply.body["message"]


# Control ---------------------------------------------------------------------------------------


async def test_pause_resume_and_stop_act_on_a_real_process(
    api: TableVaultAPI, start_worker: StartWorker
) -> None:
    # Given a running worker
    worker = start_worker(unique("loop"))

    # When it is paused, then resumed, through the API
    paused = await api.post(worker.name, "pause")
    await _status_becomes(api, worker.name, "paused")
    resumed = await api.post(worker.name, "resume", {"run_id": worker.run_id})
    await _status_becomes(api, worker.name, "running")

    # Then each POST was accepted as a stored request for that run
    assert paused.code == 202 and resumed.code == 202
    assert paused.body["request"]["action"] == "pause"
    assert paused.body["request"]["run_id"] == worker.run_id
    assert paused.body["request"]["requester"].endswith("(jupyter-server)")
    assert resumed.body["request"]["action"] == "resume"

    # When it is stopped
    stopped = await api.post(worker.name, "stop")

    # Then the process exits at its next checkpoint and is recorded as stopped by the server
    assert stopped.code == 202
    assert await worker.exit_code() == EXIT_STOPPED
    detail = await api.process(worker.name)
    assert detail["status"] == "stopped"
    assert detail["alive"] is False
    assert detail["stopped_by"] == stopped.body["request"]["requester"]
    assert [r["state"] for r in detail["requests"]] == ["done", "done", "done"]


async def test_pause_shows_as_pending_until_the_process_reaches_a_checkpoint(
    api: TableVaultAPI, start_worker: StartWorker
) -> None:
    # Given a worker that does not reach checkpoints, asked to pause
    worker = start_worker(unique("busy"), "idle")
    await api.post(worker.name, "pause")

    # When its detail is read
    detail = await api.process(worker.name)

    # Then it still runs, with the pause pending
    assert detail["status"] == "running"
    assert detail["pending_request"]["action"] == "pause"


async def test_resume_of_a_running_process_is_409(
    api: TableVaultAPI, start_worker: StartWorker
) -> None:
    worker = start_worker(unique("running"))

    reply = await api.post(worker.name, "resume")

    assert reply.code == 409
    assert "not paused" in reply.body["message"]


async def test_a_second_pause_of_a_paused_process_is_409(
    api: TableVaultAPI, start_worker: StartWorker
) -> None:
    worker = start_worker(unique("paused"))
    await api.post(worker.name, "pause")
    await _status_becomes(api, worker.name, "paused")

    reply = await api.post(worker.name, "pause")

    assert reply.code == 409
    assert "already paused" in reply.body["message"]


async def test_a_run_id_that_no_longer_holds_the_name_is_409(
    api: TableVaultAPI, start_worker: StartWorker
) -> None:
    # Given a worker that died and another that took its name
    name = unique("reused")
    old = start_worker(name)
    os.kill(old.proc.pid, signal.SIGKILL)
    await old.exit_code()
    new = start_worker(name)

    # When the old run is asked to pause, then the new one
    stale = await api.post(name, "pause", {"run_id": old.run_id})
    fresh = await api.post(name, "pause", {"run_id": new.run_id})

    # Then the request meant for the old run is refused, not sent to the new one
    assert stale.code == 409
    assert new.run_id in stale.body["message"]
    assert fresh.code == 202
    assert fresh.body["request"]["run_id"] == new.run_id


async def test_control_of_an_ended_process_is_409(
    api: TableVaultAPI, start_worker: StartWorker
) -> None:
    worker = start_worker(unique("ended"))
    await api.post(worker.name, "stop")
    await worker.exit_code()

    reply = await api.post(worker.name, "stop")

    assert reply.code == 409
    assert "not running" in reply.body["message"]


async def test_control_of_an_unknown_process_is_404(api: TableVaultAPI) -> None:
    reply = await api.post(unique("nobody"), "stop")

    assert reply.code == 404


async def test_an_unknown_action_is_400(api: TableVaultAPI, start_worker: StartWorker) -> None:
    worker = start_worker(unique("target"))

    reply = await api.post(worker.name, "kill")

    assert reply.code == 400
    assert "kill" in reply.body["message"]
    assert worker.proc.poll() is None


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ("[" * 100_000, "not valid JSON"),
        (json.dumps({"run_id": 42}), "run_id"),
    ],
    ids=["broken", "array", "deeply-nested", "run-id-number"],
)
async def test_a_bad_body_is_400(
    api: TableVaultAPI, start_worker: StartWorker, body: str, named: str
) -> None:
    worker = start_worker(unique("target"))

    reply = await api.post(worker.name, "pause", body)

    assert reply.code == 400
    assert named in reply.body["message"]
    assert (await api.process(worker.name))["requests"] == []


async def test_get_on_an_action_route_is_405(api: TableVaultAPI) -> None:
    reply = await api.get("processes", "anyone", "stop")

    assert reply.code == 405
    assert set(reply.body) == {"message", "reason"}


def test_no_server_code_signals_a_process() -> None:
    # Control is cooperative through the store; the server must never kill or signal.
    sources = Path(tablevault.server.__file__).parent.glob("*.py")
    forbidden = ("os.kill", "import signal", ".send_signal(", ".terminate(", ".kill(")

    found = [
        (source.name, word)
        for source in sources
        for word in forbidden
        if word in source.read_text()
    ]

    assert found == []
