"""REST handlers under ``{base_url}tablevault/api/``, as ``docs/openapi.yaml`` describes them.

Each handler is a thin layer over :class:`~tablevault.server.service.ProcessService`: it checks
its input, runs one store call off the event loop, and answers JSON. Errors become
``{"message", "reason"}`` with an exact status code and never carry a traceback:

    ProcessNotFoundError                     404
    ProcessStateError, NameTakenError        409
    InvalidInputError, bad body or query     400
    StoreError                               503
    anything else                            500, with a generic message (details in the log)

No route signals a process: pause, resume and stop are requests stored for the process to act on
at its next checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.client import responses
from typing import Any, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.web import HTTPError

from ..errors import (
    InvalidInputError,
    NameTakenError,
    ProcessNotFoundError,
    ProcessStateError,
    StoreError,
    TableVaultError,
)
from ..store.records import ACTIONS
from .service import ProcessService

T = TypeVar("T")

#: The resource jupyter_server's Authorizer is asked about ("read" for GET, "write" for POST).
AUTH_RESOURCE = "tablevault"
#: Where the extension keeps its ProcessService in the web application's settings.
SERVICE_SETTING = "tablevault_service"

_FLAGS = {"1": True, "true": True, "0": False, "false": False}
_STATUS_OF_ERROR: tuple[tuple[type[TableVaultError], int], ...] = (
    (ProcessNotFoundError, 404),
    (ProcessStateError, 409),
    (NameTakenError, 409),
    (InvalidInputError, 400),
    (StoreError, 503),
)


def _status_of(exc: TableVaultError) -> int:
    return next((code for kind, code in _STATUS_OF_ERROR if isinstance(exc, kind)), 500)


class TableVaultHandler(APIHandler):
    """What every tablevault route shares: the service, store calls and JSON errors."""

    auth_resource = AUTH_RESOURCE

    @property
    def service(self) -> ProcessService:
        return self.settings[SERVICE_SETTING]

    async def store_call(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking service call off the event loop; our errors become HTTP errors."""
        try:
            return await self.service.run(call, *args, **kwargs)
        except TableVaultError as exc:
            # The message goes in as an argument: a process name may contain "%".
            raise HTTPError(_status_of(exc), "%s", exc) from exc

    def reply(self, payload: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(payload))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error as ``{"message", "reason"}``, whatever ``serve_traceback`` says."""
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        message = responses.get(status_code, "Unknown HTTP Error")
        reason = None
        if isinstance(exc, HTTPError):
            if exc.log_message:
                message = exc.log_message % exc.args if exc.args else exc.log_message
            reason = exc.reason

        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message, "reason": reason}))


class ProcessListHandler(TableVaultHandler):
    # Panels poll this: it must not keep an idle server from being culled.
    _track_activity = False

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List live processes (``?all=1``: every process ever registered)."""
        flag = self.get_query_argument("all", "0")
        if flag not in _FLAGS:
            raise HTTPError(400, "%s", f"all must be 0, 1, true or false, not {flag!r}")

        processes = await self.store_call(self.service.list_processes, include_ended=_FLAGS[flag])
        self.reply({"processes": processes})


class ProcessHandler(TableVaultHandler):
    _track_activity = False

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        """One process, with its recent code items and requests."""
        detail = await self.store_call(self.service.process_detail, name)
        self.reply(detail)


class ProcessActionHandler(TableVaultHandler):
    @web.authenticated
    @authorized
    async def post(self, name: str, action: str) -> None:
        """Ask a process to pause, resume or stop at its next checkpoint."""
        if action not in ACTIONS:
            raise HTTPError(
                400, "%s", f"action must be one of {', '.join(ACTIONS)}, not {action!r}"
            )
        run_id = self._run_id_from_body()

        request = await self.store_call(self.service.request_action, name, action, run_id)
        self.reply({"request": request}, status=202)

    def _run_id_from_body(self) -> str | None:
        if not self.request.body.strip():
            return None
        try:
            body = json.loads(self.request.body)
        except (ValueError, RecursionError) as exc:
            raise HTTPError(400, "the request body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise HTTPError(400, "the request body must be a JSON object")
        run_id = body.get("run_id")
        if run_id is not None and not isinstance(run_id, str):
            raise HTTPError(400, "%s", f"run_id must be a string, not {type(run_id).__name__}")
        return run_id


def routes(base_url: str) -> list[tuple[str, type[TableVaultHandler]]]:
    """The URL patterns; a name is one path segment, its slashes sent as ``%2F``."""
    api = url_path_join(base_url, "tablevault", "api", "processes")
    name = r"(?P<name>[^/]+)"
    return [
        (api, ProcessListHandler),
        (url_path_join(api, name), ProcessHandler),
        (url_path_join(api, name, r"(?P<action>[^/]+)"), ProcessActionHandler),
    ]
