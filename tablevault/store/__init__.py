"""Storage behind one interface: the embedded SQLite store, or ArangoDB."""

from __future__ import annotations

from ..config import TableVaultSettings
from .base import Store
from .records import CodeItem, Outcome, ProcessRecord, Request


def open_store(settings: TableVaultSettings | None = None) -> Store:
    """The store the settings point at: ArangoDB when a URL is set, else the SQLite file."""
    settings = settings or TableVaultSettings()
    if settings.arango_url:
        from .arango import ArangoStore

        return ArangoStore.from_settings(settings)
    from .sqlite import SQLiteStore

    return SQLiteStore(settings.sqlite_path, stale_after=settings.stale_after)


__all__ = ["CodeItem", "Outcome", "ProcessRecord", "Request", "Store", "open_store"]
