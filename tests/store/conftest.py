"""Real stores for the contract tests, and factories for the runs they hold.

Every contract test runs once per backend: against a fresh SQLite file always, and against an
ArangoDB server when ``TABLEVAULT_TEST_ARANGO_URL`` names one. The ArangoDB tests share one
database per session, with a random suffix so that two sessions on one server never meet; it
is emptied after each test and dropped at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from arango import ArangoClient

from tablevault.config import TableVaultSettings
from tablevault.identity import ProcessIdentity
from tablevault.store import Store
from tablevault.store.arango import COLLECTIONS, ArangoStore
from tablevault.store.records import ProcessRecord, now
from tablevault.store.sqlite import SQLiteStore

ARANGO_URL = os.environ.get("TABLEVAULT_TEST_ARANGO_URL", "").strip()
ARANGO_SKIP_REASON = (
    "no ArangoDB server: set TABLEVAULT_TEST_ARANGO_URL to run the ArangoDB contract tests"
)
ARANGO = pytest.param(
    "arango",
    marks=[pytest.mark.arango, pytest.mark.skipif(not ARANGO_URL, reason=ARANGO_SKIP_REASON)],
)


@pytest.fixture(scope="session")
def arango_settings() -> Iterator[TableVaultSettings]:
    """Settings of a new database on the test server, dropped when the session ends."""
    if not ARANGO_URL:
        pytest.skip(ARANGO_SKIP_REASON)
    settings = TableVaultSettings(
        arango_url=ARANGO_URL,
        arango_db=f"tablevault_test_{uuid.uuid4().hex[:12]}",
        arango_username=os.environ.get("TABLEVAULT_TEST_ARANGO_USERNAME", "root"),
        arango_password=os.environ.get("TABLEVAULT_TEST_ARANGO_PASSWORD", ""),
    )
    ArangoStore.from_settings(settings, create_database=True).close()
    yield settings

    client = ArangoClient(hosts=ARANGO_URL)
    try:
        system = client.db(
            "_system", username=settings.arango_username, password=settings.arango_password
        )
        system.delete_database(settings.arango_db, ignore_missing=True)
    finally:
        client.close()


def _empty_arango(settings: TableVaultSettings) -> None:
    client = ArangoClient(hosts=settings.arango_url)
    try:
        db = client.db(
            settings.arango_db,
            username=settings.arango_username,
            password=settings.arango_password,
        )
        for name in COLLECTIONS:
            db.collection(name).truncate()
    finally:
        client.close()


@pytest.fixture(params=["sqlite", ARANGO])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Store]]:
    """Opens stores over one fresh backend; each call is another client of the same data."""
    opened: list[Store] = []
    settings = request.getfixturevalue("arango_settings") if request.param == "arango" else None

    def open_store(stale_after: float = 30.0) -> Store:
        if settings is None:
            store: Store = SQLiteStore(tmp_path / "tablevault.sqlite3", stale_after=stale_after)
        else:
            store = ArangoStore.from_settings(
                TableVaultSettings(
                    arango_url=settings.arango_url,
                    arango_db=settings.arango_db,
                    arango_username=settings.arango_username,
                    arango_password=settings.arango_password,
                    stale_after=stale_after,
                )
            )
        opened.append(store)
        return store

    yield open_store

    for store in opened:
        store.close()
    if settings is not None:
        _empty_arango(settings)


@pytest.fixture
def store(backend: Callable[..., Store]) -> Store:
    return backend()


@pytest.fixture(scope="session")
def dead_pid() -> int:
    """The pid of a process that has finished (its pid is free or reused by another)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def unique_name(prefix: str = "proc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def new_run(dead_pid: int) -> Callable[..., ProcessRecord]:
    """Builds an unregistered run: of this very process, or of a dead one with ``dead=True``.

    A dead run carries a made-up start time, so that even a reused pid does not revive it.
    """
    me = ProcessIdentity.current()

    def build(name: str | None = None, *, dead: bool = False, **fields: Any) -> ProcessRecord:
        values: dict[str, Any] = {
            "run_id": uuid.uuid4().hex,
            "name": name or unique_name(),
            "user_id": "tester",
            "kind": "script",
            "host": me.host,
            "pid": dead_pid if dead else me.pid,
            "create_time": 1.0 if dead else me.create_time,
            "started_at": now(),
        }
        values.update(fields)
        return ProcessRecord(**values)

    return build


@pytest.fixture
def add_run(store: Store, new_run: Callable[..., ProcessRecord]) -> Callable[..., ProcessRecord]:
    """Builds a run like ``new_run`` and registers it in ``store``."""

    def add(name: str | None = None, **fields: Any) -> ProcessRecord:
        return store.register_run(new_run(name, **fields))

    return add
