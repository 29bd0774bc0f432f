"""Authentication and XSRF: no tablevault route answers without credentials.

Each test runs twice: with jupyter_server's default, where a method that a handler does not
implement answers 405 before any authentication (no handler code runs), and with
``allow_unauthenticated_access = False``, where every request without credentials is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

import pytest
from tornado.routing import PathMatches, Rule
from tornado.web import RequestHandler

from tablevault.server.handlers import (
    ProcessActionHandler,
    ProcessHandler,
    ProcessListHandler,
)

from .conftest import TableVaultAPI, Worker, unique


@pytest.fixture(params=[True, False], ids=["default", "strict"])
def tablevault_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"ServerApp": {"allow_unauthenticated_access": request.param}}


def _implements(handler: type[RequestHandler], method: str) -> bool:
    return getattr(handler, method.lower()) is not RequestHandler._unimplemented_method


_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_SAMPLES = {"name": "someone", "action": "stop"}


def _tablevault_rules(router: Any) -> list[Rule]:
    """Every rule, however deeply nested, that serves a tablevault URL or handler."""
    found = []
    for rule in router.rules:
        if hasattr(rule.target, "rules"):
            found.extend(_tablevault_rules(rule.target))
            continue
        pattern = rule.matcher.regex.pattern if isinstance(rule.matcher, PathMatches) else ""
        module = getattr(rule.target, "__module__", "") or ""
        if "tablevault" in pattern or module.startswith("tablevault"):
            found.append(rule)
    return found


def _sample_path(rule: Rule) -> str:
    """A concrete URL path the rule matches, its groups filled with sample values."""
    path = _GROUP.sub(lambda group: _SAMPLES[group.group(1)], rule.matcher.regex.pattern)
    path = path.removesuffix("$")
    assert rule.matcher.regex.fullmatch(path), f"cannot build a path for {path!r}"
    return path


async def test_every_tablevault_route_refuses_requests_without_credentials(
    jp_serverapp: Any,
    http_server_client: Any,
    service: Any,
    tablevault_config: dict[str, Any],
) -> None:
    strict = not tablevault_config["ServerApp"]["allow_unauthenticated_access"]

    # Given every route the server has for tablevault
    rules = _tablevault_rules(jp_serverapp.web_app.default_router)
    assert {rule.target for rule in rules} == {
        ProcessListHandler,
        ProcessHandler,
        ProcessActionHandler,
    }

    for rule in rules:
        path = _sample_path(rule)
        for method, body in (("GET", None), ("POST", b"{}")):
            for headers in ({}, {"Authorization": "token not-the-token"}):
                # When it is called without valid credentials
                response = await http_server_client.fetch(
                    path,
                    method=method,
                    body=body,
                    headers=headers,
                    raise_error=False,
                    follow_redirects=False,
                )

                # Then it is refused, as JSON without a traceback
                refused = (
                    (401, 403) if strict or _implements(rule.target, method) else (401, 403, 405)
                )
                assert response.code in refused, (method, path, headers, response.code)
                assert set(json.loads(response.body)) == {"message", "reason"}


def test_the_servers_own_audit_finds_every_method_authenticated(
    jp_serverapp: Any, service: Any
) -> None:
    web_app = jp_serverapp.web_app

    missing = [
        gap
        for rule in _tablevault_rules(web_app.default_router)
        for gap in web_app._check_handler_auth(rule.matcher, rule.target)
    ]

    assert missing == []


async def test_a_cookie_session_must_send_the_xsrf_token_to_post(
    api: TableVaultAPI, start_worker: Callable[..., Worker]
) -> None:
    # Given a browser session: the login cookie the server set on a token-authenticated call
    worker = start_worker(unique("xsrf"), "idle")
    first = await api.get("processes")
    cookies = SimpleCookie()
    for header in first.headers.get_list("Set-Cookie"):
        cookies.load(header)
    assert cookies, "the server set no login cookie"
    session = "; ".join(f"{key}={morsel.value}" for key, morsel in cookies.items())

    # When the cookie alone reads, then posts without and with the XSRF token
    read = await api.get("processes", authenticated=False, headers={"Cookie": session})
    forged = await api.post(worker.name, "stop", authenticated=False, headers={"Cookie": session})
    after_forged = await api.process(worker.name)
    genuine = await api.post(
        worker.name,
        "stop",
        authenticated=False,
        headers={"Cookie": f"{session}; _xsrf=5eed", "X-XSRFToken": "5eed"},
    )

    # Then reading works, the post without the token is refused and stores nothing,
    # and the post with it is accepted
    assert read.code == 200
    assert forged.code == 403
    assert "xsrf" in forged.body["message"].lower()
    assert after_forged["requests"] == []
    assert genuine.code == 202
