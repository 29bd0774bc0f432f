"""The real handlers against ``docs/openapi.yaml``, with schemathesis.

schemathesis cannot host a tornado application in-process (it speaks ASGI and WSGI), so it
calls the live test server over HTTP instead, from a worker thread while the server keeps
serving on the test's event loop. Two tests:

- the responses of deliberate calls, each status the document lists (a live process with a
  pending request and a running code item, an ended one, 202, 400, 404, 409), are validated
  against the document: status code, content type and body schema;
- schemathesis generates requests from the document for every operation, valid and invalid,
  sends them with the token, and runs its checks on every answer (no server error, documented
  status and content type, body schema, invalid input rejected, auth not ignored).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from jupyter_server.utils import url_path_join
from schemathesis import GenerationMode

from tablevault.errors import EXIT_STOPPED

from .conftest import REPO, TableVaultAPI, Worker, unique

SPEC = REPO / "docs" / "openapi.yaml"


@pytest.fixture
def schema() -> Any:
    return schemathesis.openapi.from_path(SPEC)


@pytest.fixture
def live_api(api: TableVaultAPI, jp_http_port: int, jp_base_url: str) -> str:
    """The API's base URL on the running test server."""
    return f"http://127.0.0.1:{jp_http_port}{url_path_join(jp_base_url, 'tablevault', 'api')}"


async def _call(
    method: str, url: str, headers: dict[str, str], body: str | None = None
) -> requests.Response:
    return await asyncio.to_thread(
        requests.request, method, url, headers=headers, data=body, timeout=30
    )


async def test_real_responses_match_the_document(
    schema: Any,
    live_api: str,
    jp_auth_header: dict[str, str],
    api: TableVaultAPI,
    start_worker: Callable[..., Worker],
) -> None:
    # Given a running process, one stuck with a pending pause, and one that ended
    running = start_worker(unique("dir") + "/run.ipynb")
    stuck = start_worker(unique("stuck"), "idle")
    ended = start_worker(unique("ended"))
    assert (await api.post(stuck.name, "pause")).code == 202
    assert (await api.post(ended.name, "stop")).code == 202
    assert await ended.exit_code() == EXIT_STOPPED

    def url(*segments: str) -> str:
        return "/".join([live_api, *(quote(segment, safe="") for segment in segments)])

    calls = [
        ("/processes", "GET", url("processes"), None, 200),
        ("/processes", "GET", url("processes") + "?all=1", None, 200),
        ("/processes", "GET", url("processes") + "?all=maybe", None, 400),
        ("/processes/{name}", "GET", url("processes", stuck.name), None, 200),
        ("/processes/{name}", "GET", url("processes", ended.name), None, 200),
        ("/processes/{name}", "GET", url("processes", running.name), None, 200),
        ("/processes/{name}", "GET", url("processes", "nobody"), None, 404),
        ("/processes/{name}", "GET", url("processes", "a\tb"), None, 400),
        (
            "/processes/{name}/{action}",
            "POST",
            url("processes", running.name, "pause"),
            json.dumps({"run_id": running.run_id}),
            202,
        ),
        ("/processes/{name}/{action}", "POST", url("processes", running.name, "stop"), None, 202),
        ("/processes/{name}/{action}", "POST", url("processes", ended.name, "resume"), None, 409),
        ("/processes/{name}/{action}", "POST", url("processes", "nobody", "stop"), None, 404),
        (
            "/processes/{name}/{action}",
            "POST",
            url("processes", stuck.name, "stop"),
            "{broken",
            400,
        ),
    ]
    listed: dict[str, Any] = {}
    for path, method, address, body, expected in calls:
        # When each call is made
        response = await _call(method, address, jp_auth_header, body)

        # Then it has the status meant, and the document describes the answer
        assert response.status_code == expected, (method, address, response.text)
        schema[path][method].validate_response(response)
        if path == "/processes" and expected == 200:
            listed.update({p["name"]: p for p in response.json()["processes"]})

    # And the listing validated above did carry the optional parts
    assert listed[stuck.name]["pending_request"] is not None
    assert listed[running.name]["current_item"] is not None
    assert listed[ended.name]["ended_at"] is not None


def _fuzz(schema: Any, base_url: str, headers: dict[str, str]) -> int:
    """Generate and send requests for every operation; returns how many were sent."""
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis.settings(
                max_examples=40,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                nonlocal sent
                # jupyter_server reads query parameters of its own on every route (token,
                # no_track_activity), so unknown ones are ignored rather than refused.
                hypothesis.assume(set(case.query or {}) <= {"all"})
                case.call_and_validate(base_url=base_url, headers=headers)
                sent += 1

            check()
    return sent


async def test_generated_requests_pass_schemathesis_checks(
    schema: Any,
    live_api: str,
    jp_auth_header: dict[str, str],
    start_worker: Callable[..., Worker],
) -> None:
    # Given a live process, so that the listing has something to describe
    start_worker(unique("fuzzed"))

    # When schemathesis sends what it generates from the document
    sent = await asyncio.to_thread(_fuzz, schema, live_api, jp_auth_header)

    # Then every answer passed its checks (a failure raises), and many were sent
    assert sent > 100
