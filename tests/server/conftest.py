"""A real Jupyter server with the extension, a real store, and real processes to control.

Every test gets its own SQLite store under a temporary ``TABLEVAULT_HOME`` (set before the
server starts; monkeypatch puts ``os.environ`` back afterwards), a server from pytest-jupyter
with tablevault enabled, and a factory of worker subprocesses that register in that store and
loop through checkpoints.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from jupyter_server.utils import url_path_join

# pytest-jupyter has no entry point, and only a top-level conftest may name plugins in
# pytest_plugins; importing its fixtures and hooks here scopes them to tests/server, the way
# pytest-jupyter pulls in its own parts.
from pytest_jupyter.jupyter_server import *  # noqa: F403
from tornado.httpclient import HTTPResponse
from tornado.httputil import HTTPHeaders
from traitlets.config import Config

from tablevault.server.handlers import SERVICE_SETTING
from tablevault.server.service import ProcessService

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("worker.py")


def unique(prefix: str) -> str:
    """A process name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 15.0, what: str = "the condition"
) -> None:
    """Wait, letting the server run, until ``check()`` is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.05)


# The store and the server --------------------------------------------------------------------


@pytest.fixture
def tablevault_home(tmp_path: Path) -> Path:
    return tmp_path / "vault"


@pytest.fixture
def tablevault_env(tablevault_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment the server and the workers share: one store, fast polling."""
    monkeypatch.setenv("TABLEVAULT_HOME", str(tablevault_home))
    monkeypatch.setenv("TABLEVAULT_POLL_INTERVAL", "0.1")
    monkeypatch.setenv("TABLEVAULT_HEARTBEAT_INTERVAL", "0.2")
    monkeypatch.delenv("TABLEVAULT_ARANGO_URL", raising=False)
    monkeypatch.delenv("TABLEVAULT_PARENT", raising=False)
    pythonpath = os.environ.get("PYTHONPATH")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(REPO), pythonpath] if pythonpath else [str(REPO)])
    )
    return tablevault_home


@pytest.fixture
def tablevault_config() -> dict[str, Any]:
    """Extra config for the server; a test module overrides it to change the set-up."""
    return {}


@pytest.fixture
def jp_server_config(tablevault_env: Path, tablevault_config: dict[str, Any]) -> Config:
    extensions = {"tablevault": True, "jupyter_server_terminals": False}
    config = Config({"ServerApp": {"jpserver_extensions": extensions}})
    config.merge(Config(tablevault_config))
    return config


@pytest.fixture
def service(jp_serverapp: Any) -> Iterator[ProcessService]:
    """The extension's service in the running server, closed when the test ends."""
    service = jp_serverapp.web_app.settings[SERVICE_SETTING]
    yield service
    service.close()


# Calling the API -----------------------------------------------------------------------------


@dataclass
class Reply:
    code: int
    body: dict[str, Any]
    headers: HTTPHeaders = field(default_factory=HTTPHeaders)
    raw: bytes = b""


class TableVaultAPI:
    """Requests to ``{base_url}tablevault/api/`` with each path segment percent-encoded.

    jp_fetch encodes a whole path and keeps its slashes, so it cannot send a name such as
    ``dir/a.ipynb`` as the single segment ``dir%2Fa.ipynb``; this does.
    """

    def __init__(self, client: Any, base_url: str, auth: dict[str, str]) -> None:
        self.client = client
        self.base_url = base_url
        self.auth = auth

    def path(self, *segments: str) -> str:
        encoded = "/".join(quote(segment, safe="") for segment in segments)
        return url_path_join(self.base_url, "tablevault", "api", encoded)

    async def fetch(
        self,
        method: str,
        *segments: str,
        body: bytes | str | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        authenticated: bool = True,
    ) -> Reply:
        url = self.path(*segments) + (f"?{urlencode(params)}" if params else "")
        sent = {**(self.auth if authenticated else {}), **(headers or {})}
        if method == "POST" and body is None:
            body = b""
        response: HTTPResponse = await self.client.fetch(
            url,
            method=method,
            body=body,
            headers=sent,
            raise_error=False,
            follow_redirects=False,
        )
        raw = response.body or b""
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"unparsed": raw.decode("utf-8", "replace")}
        return Reply(response.code, parsed, response.headers, raw)

    async def get(self, *segments: str, **kwargs: Any) -> Reply:
        return await self.fetch("GET", *segments, **kwargs)

    async def post(
        self, name: str, action: str, body: dict[str, Any] | str | None = None, **kwargs: Any
    ) -> Reply:
        sent = json.dumps(body) if isinstance(body, dict) else body
        return await self.fetch("POST", "processes", name, action, body=sent, **kwargs)

    async def process(self, name: str) -> dict[str, Any]:
        reply = await self.get("processes", name)
        assert reply.code == 200, reply.body
        return reply.body


@pytest.fixture
def api(
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    service: ProcessService,
) -> TableVaultAPI:
    return TableVaultAPI(http_server_client, jp_base_url, jp_auth_header)


# Processes to control ------------------------------------------------------------------------


@dataclass
class Worker:
    name: str
    run_id: str
    proc: subprocess.Popen[str]

    async def exit_code(self, timeout: float = 15.0) -> int:
        return await asyncio.to_thread(self.proc.wait, timeout)


@pytest.fixture
def start_worker(tablevault_env: Path, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start ``worker.py`` under a name; every worker still running at the end is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(name: str, mode: str = "checkpoints") -> Worker:
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, str(WORKER), name, mode],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if line[:1] != ["ready"]:
            proc.kill()
            raise AssertionError(f"worker {name!r} did not start: {log.read_text()}")
        return Worker(name, line[1], proc)

    yield start

    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
