"""Settings shared by the Vault, the CLI and the server extension.

Each setting is a traitlets trait, so the server extension takes them from Jupyter's config
files (``c.TableVaultSettings.poll_interval = 0.2``); in kernels and scripts they come from the
environment variables named in each help text, then from the defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

from traitlets import Float, Unicode, default, validate
from traitlets.config import Configurable

from .errors import InvalidInputError


def _env(name: str, fallback: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or fallback


def _env_seconds(name: str, fallback: float) -> float:
    """A positive number of seconds from the environment, or a clear error naming it."""
    raw = _env(name)
    if raw is None:
        return fallback
    try:
        seconds = float(raw)
    except ValueError:
        raise InvalidInputError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise InvalidInputError(f"{name} must be a positive number of seconds, not {raw!r}")
    return seconds


class TableVaultSettings(Configurable):
    """Where the store lives and how often each process talks to it."""

    home = Unicode(
        help="Folder of the embedded SQLite store (env TABLEVAULT_HOME; default ~/.tablevault)."
    ).tag(config=True)

    arango_url = Unicode(
        "",
        help="ArangoDB server URL, e.g. http://db:8529 (env TABLEVAULT_ARANGO_URL). "
        "Empty: use the embedded SQLite store.",
    ).tag(config=True)

    arango_db = Unicode(help="ArangoDB database name (env TABLEVAULT_ARANGO_DB).").tag(config=True)
    arango_username = Unicode(help="ArangoDB user (env TABLEVAULT_ARANGO_USERNAME).").tag(
        config=True
    )
    arango_password = Unicode(help="ArangoDB password (env TABLEVAULT_ARANGO_PASSWORD).").tag(
        config=True
    )

    poll_interval = Float(
        help="Seconds between two looks for requests addressed to this process "
        "(env TABLEVAULT_POLL_INTERVAL; default 0.5). A request waits at most this long "
        "before the next checkpoint acts on it."
    ).tag(config=True)

    heartbeat_interval = Float(
        help="Seconds between two heartbeats written to the store "
        "(env TABLEVAULT_HEARTBEAT_INTERVAL; default 2); checkpoint counts and times reach the "
        "store with it."
    ).tag(config=True)

    stale_after = Float(
        help="Seconds without a heartbeat after which a process on another host is taken for "
        "dead (env TABLEVAULT_STALE_AFTER; default 30). Processes on this host are judged "
        "by pid and start time instead."
    ).tag(config=True)

    @default("home")
    def _default_home(self) -> str:
        return _env("TABLEVAULT_HOME") or str(Path.home() / ".tablevault")

    @default("arango_url")
    def _default_arango_url(self) -> str:
        return _env("TABLEVAULT_ARANGO_URL", "")

    @default("arango_db")
    def _default_arango_db(self) -> str:
        return _env("TABLEVAULT_ARANGO_DB", "tablevault")

    @default("arango_username")
    def _default_arango_username(self) -> str:
        return _env("TABLEVAULT_ARANGO_USERNAME", "root")

    @default("arango_password")
    def _default_arango_password(self) -> str:
        return _env("TABLEVAULT_ARANGO_PASSWORD", "")

    @default("poll_interval")
    def _default_poll_interval(self) -> float:
        return _env_seconds("TABLEVAULT_POLL_INTERVAL", 0.5)

    @default("heartbeat_interval")
    def _default_heartbeat_interval(self) -> float:
        return _env_seconds("TABLEVAULT_HEARTBEAT_INTERVAL", 2.0)

    @default("stale_after")
    def _default_stale_after(self) -> float:
        return _env_seconds("TABLEVAULT_STALE_AFTER", 30.0)

    @validate("poll_interval", "heartbeat_interval", "stale_after")
    def _positive(self, proposal: dict) -> float:
        if not proposal["value"] > 0:
            raise InvalidInputError(f"{proposal['trait'].name} must be positive seconds")
        return proposal["value"]

    @property
    def sqlite_path(self) -> Path:
        return Path(self.home).expanduser() / "tablevault.sqlite3"
