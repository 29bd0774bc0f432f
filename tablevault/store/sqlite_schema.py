"""The embedded store's tables, and how their rows become records.

Column lists are written out once here and used by every query, so the SQL built from them in
sqlite.py never holds anything but these names; values always go through ``?`` placeholders.
"""

from __future__ import annotations

import sqlite3

from .records import CodeItem, ProcessRecord, Request

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    create_time REAL NOT NULL,
    started_at REAL NOT NULL,
    status TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    parent_name TEXT,
    parent_index INTEGER,
    parent_run_id TEXT,
    ended_at REAL,
    heartbeat_at REAL,
    last_checkpoint_at REAL,
    checkpoint_count INTEGER NOT NULL DEFAULT 0,
    exit_status INTEGER,
    stopped_by TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_live_name ON runs (name) WHERE ended_at IS NULL;
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name, started_at);
CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (parent_run_id);

CREATE TABLE IF NOT EXISTS code_items (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    started_at REAL NOT NULL,
    status TEXT NOT NULL,
    execution_count INTEGER,
    cell_id TEXT,
    duration REAL,
    error_type TEXT,
    error_message TEXT,
    traceback TEXT,
    exit_code INTEGER,
    UNIQUE (run_id, idx)
);
CREATE INDEX IF NOT EXISTS code_items_running ON code_items (status) WHERE status = 'running';

CREATE TABLE IF NOT EXISTS thread_errors (
    id INTEGER PRIMARY KEY,
    code_item_id INTEGER NOT NULL,
    thread_name TEXT NOT NULL,
    error_type TEXT NOT NULL,
    error_message TEXT NOT NULL,
    traceback TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS thread_errors_by_item ON thread_errors (code_item_id);

CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    target_name TEXT NOT NULL,
    action TEXT NOT NULL,
    requester TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_run ON requests (run_id, state);

CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl TEXT NOT NULL,
    run_id TEXT NOT NULL,
    process_name TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_table ON records (tbl, id);

CREATE VIRTUAL TABLE IF NOT EXISTS code_text USING fts5 (body, tokenize = 'trigram');
CREATE VIRTUAL TABLE IF NOT EXISTS description_text USING fts5 (body, tokenize = 'trigram');
"""

RUN_COLUMNS = (
    "run_id, name, user_id, kind, host, pid, create_time, started_at, status, description, "
    "parent_name, parent_index, parent_run_id, ended_at, heartbeat_at, last_checkpoint_at, "
    "checkpoint_count, exit_status, stopped_by"
)
CODE_COLUMNS = (
    "id, run_id, idx, kind, source, started_at, status, execution_count, cell_id, duration, "
    "error_type, error_message, traceback, exit_code"
)
REQUEST_COLUMNS = "id, run_id, target_name, action, requester, created_at, updated_at, state"


def run_from_row(row: sqlite3.Row) -> ProcessRecord:
    return ProcessRecord(**dict(row))


def code_item_from_row(row: sqlite3.Row) -> CodeItem:
    fields = dict(row)
    fields["index"] = fields.pop("idx")
    return CodeItem(**fields)


def request_from_row(row: sqlite3.Row) -> Request:
    return Request(**dict(row))
