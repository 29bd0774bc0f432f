"""The embedded store: one SQLite file shared by every process on the machine.

Many processes write to it at once, so it runs in WAL mode (readers never wait for writers),
every write takes the lock up front with ``BEGIN IMMEDIATE`` (no deadlock between two readers
that both want to write), and a write that still finds the file locked after the busy timeout
is retried a few times with backoff before it becomes a StoreError. Each thread has its own
connection, as sqlite3 requires. Code, errors and descriptions are indexed with FTS5's trigram
tokenizer, so a search matches any substring of three characters or more.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..errors import (
    InvalidInputError,
    NameTakenError,
    ProcessNotFoundError,
    ProcessStateError,
    StoreError,
    StoreUnavailableError,
)
from .base import Store
from .records import CodeItem, Outcome, ProcessRecord, Request, now
from .rules import decide_request
from .sqlite_schema import (
    CODE_COLUMNS,
    REQUEST_COLUMNS,
    RUN_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    code_item_from_row,
    request_from_row,
    run_from_row,
)

T = TypeVar("T")

# A write waits at most about 2 s x 3 attempts for a lock: long enough for dozens of busy
# writers, short enough that a store held by someone else is reported, not waited out.
_BUSY_TIMEOUT_MS = 2_000
_WRITE_ATTEMPTS = 3

# The run a name means: its live one, else the one started last.
_LATEST_RUN = (
    f"SELECT {RUN_COLUMNS} FROM runs WHERE name = ? "
    "ORDER BY ended_at IS NULL DESC, started_at DESC LIMIT 1"
)
# FTS5's trigram tokenizer cannot match fewer than three characters; LIKE does it instead.
_TRIGRAM = 3


def _phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message


class SQLiteStore(Store):
    """A :class:`Store` in one SQLite file."""

    def __init__(self, path: str | Path, stale_after: float = 30.0) -> None:
        super().__init__(stale_after)
        self.path = Path(path).expanduser()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._file_identity: tuple[int, int] | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(f"cannot create {self.path.parent}: {exc}") from exc
        # Only a new or older file needs the write lock; opening a current one only reads, so
        # `tablevault ps` works while another process holds a long write transaction.
        with self._reading("read the schema version") as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            self._write("create the schema", self._create_schema)
            self._enable_wal()
        self._file_identity = self._current_file()

    def _current_file(self) -> tuple[int, int] | None:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return None
        return status.st_dev, status.st_ino

    def _check_same_file(self, what: str) -> None:
        """Refuse to go on with a file that was deleted or replaced under this process.

        SQLite keeps writing to a deleted file's open descriptor: without this check, every
        write after an `rm` would succeed and be lost, unseen by any other process.
        """
        if self._file_identity is not None and self._current_file() != self._file_identity:
            raise StoreUnavailableError(
                f"cannot {what}: {self.path} was deleted or replaced while this process was "
                "using it; restart the process to use the new file"
            )

    # Connections and transactions -------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"cannot open {self.path}: {exc}") from exc
        self._local.conn = conn
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def _write(self, what: str, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in one write transaction, retrying while the file stays locked."""
        self._check_same_file(what)
        conn = self._connection()
        delay = 0.05
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _is_busy(exc) and attempt < _WRITE_ATTEMPTS - 1:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise StoreError(f"cannot {what} in {self.path}: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"cannot {what} in {self.path}: {exc}") from exc
            try:
                result = body(conn)
                conn.execute("COMMIT")
                return result
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"cannot {what} in {self.path}: {exc}") from exc
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    @contextmanager
    def _reading(self, what: str) -> Iterator[sqlite3.Connection]:
        self._check_same_file(what)
        try:
            yield self._connection()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot {what} in {self.path}: {exc}") from exc

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer tablevault (schema {version}); upgrade"
            )
        # executescript() would commit the open transaction first; run statements one by one.
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _enable_wal(self) -> None:
        """Readers never wait for writers in WAL mode; the file keeps the mode once set."""
        try:
            self._connection().execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot switch {self.path} to WAL mode: {exc}") from exc

    def close(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            try:
                conn.close()
            except sqlite3.ProgrammingError:
                # Closing a connection made in another thread is refused; that thread's
                # exit closes it.
                continue
        self._local = threading.local()

    # Runs ------------------------------------------------------------------------------------

    def _live_run(self, conn: sqlite3.Connection, name: str) -> ProcessRecord | None:
        row = conn.execute(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE name = ? AND ended_at IS NULL", (name,)
        ).fetchone()
        return run_from_row(row) if row else None

    def _finalise(
        self, conn: sqlite3.Connection, run_id: str, status: str, **extra: Any
    ) -> tuple[int, int]:
        """End a run; returns how many of its code items were lost and requests expired."""
        at = now()
        conn.execute(
            "UPDATE runs SET status = ?, ended_at = ?, exit_status = COALESCE(?, exit_status), "
            "stopped_by = COALESCE(?, stopped_by) WHERE run_id = ? AND ended_at IS NULL",
            (status, at, extra.get("exit_status"), extra.get("stopped_by"), run_id),
        )
        expired = conn.execute(
            "UPDATE requests SET state = 'expired', updated_at = ? "
            "WHERE run_id = ? AND state IN ('pending', 'acknowledged')",
            (at, run_id),
        ).rowcount
        lost = conn.execute(
            "UPDATE code_items SET status = 'lost' WHERE run_id = ? AND status = 'running'",
            (run_id,),
        ).rowcount
        return lost, expired

    def _claim_name(self, conn: sqlite3.Connection, name: str, run_id: str) -> None:
        holder = self._live_run(conn, name)
        if holder is None or holder.run_id == run_id:
            return
        if self.run_is_alive(holder):
            raise NameTakenError(name, holder.pid, holder.host)
        self._finalise(conn, holder.run_id, "crashed")

    def register_run(self, run: ProcessRecord) -> ProcessRecord:
        def body(conn: sqlite3.Connection) -> ProcessRecord:
            self._claim_name(conn, run.name, run.run_id)
            fields = run.to_dict()
            conn.execute(
                f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * len(fields))})",
                [fields[column.strip()] for column in RUN_COLUMNS.split(",")],
            )
            self._index_description(conn, run.run_id, run.description)
            return run

        return self._write(f"register process {run.name!r}", body)

    def _index_description(self, conn: sqlite3.Connection, run_id: str, text: str) -> None:
        rowid = conn.execute("SELECT rowid FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
        conn.execute("DELETE FROM description_text WHERE rowid = ?", (rowid,))
        conn.execute("INSERT INTO description_text (rowid, body) VALUES (?, ?)", (rowid, text))

    def rename_run(
        self,
        run_id: str,
        name: str,
        *,
        user_id: str | None = None,
        description: str | None = None,
    ) -> ProcessRecord:
        def body(conn: sqlite3.Connection) -> ProcessRecord:
            self._claim_name(conn, name, run_id)
            conn.execute(
                "UPDATE runs SET name = ?, user_id = COALESCE(?, user_id), "
                "description = COALESCE(?, description) WHERE run_id = ?",
                (name, user_id, description, run_id),
            )
            conn.execute("UPDATE requests SET target_name = ? WHERE run_id = ?", (name, run_id))
            conn.execute("UPDATE runs SET parent_name = ? WHERE parent_run_id = ?", (name, run_id))
            if description is not None:
                self._index_description(conn, run_id, description)
            row = conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise ProcessNotFoundError(run_id)
            return run_from_row(row)

        return self._write(f"rename a process to {name!r}", body)

    def heartbeat(
        self, run_id: str, checkpoint_count: int, last_checkpoint_at: float | None
    ) -> None:
        self._write(
            "record a heartbeat",
            lambda conn: conn.execute(
                "UPDATE runs SET heartbeat_at = ?, checkpoint_count = ?, "
                "last_checkpoint_at = COALESCE(?, last_checkpoint_at) WHERE run_id = ?",
                (now(), checkpoint_count, last_checkpoint_at, run_id),
            ),
        )

    def set_run_status(self, run_id: str, status: str) -> None:
        self._write(
            f"mark a process {status}",
            lambda conn: conn.execute(
                "UPDATE runs SET status = ? WHERE run_id = ? AND ended_at IS NULL",
                (status, run_id),
            ),
        )

    def end_run(
        self,
        run_id: str,
        status: str,
        *,
        exit_status: int | None = None,
        stopped_by: str | None = None,
    ) -> None:
        self._write(
            "end a process run",
            lambda conn: self._finalise(
                conn, run_id, status, exit_status=exit_status, stopped_by=stopped_by
            ),
        )

    def get_run(
        self, *, name: str | None = None, run_id: str | None = None
    ) -> ProcessRecord | None:
        with self._reading("look up a process") as conn:
            if run_id is not None:
                row = conn.execute(
                    f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
                ).fetchone()
            else:
                row = conn.execute(_LATEST_RUN, (name,)).fetchone()
        return run_from_row(row) if row else None

    def list_runs(self, *, live_only: bool = True) -> list[ProcessRecord]:
        where = "WHERE ended_at IS NULL" if live_only else ""
        with self._reading("list processes") as conn:
            rows = conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs {where} ORDER BY started_at DESC"
            ).fetchall()
        return [run_from_row(row) for row in rows]

    # Code ------------------------------------------------------------------------------------

    @staticmethod
    def _next_id(conn: sqlite3.Connection, table: str) -> int:
        """A timestamp id: microseconds now, or one past the newest id if that is later."""
        newest = conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]
        return max(int(now() * 1_000_000), newest + 1)

    def start_code_item(
        self,
        run_id: str,
        kind: str,
        source: str,
        *,
        execution_count: int | None = None,
        cell_id: str | None = None,
        started_at: float | None = None,
    ) -> CodeItem:
        def body(conn: sqlite3.Connection) -> CodeItem:
            index = conn.execute(
                "SELECT COALESCE(MAX(idx) + 1, 0) FROM code_items WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            item = CodeItem(
                id=self._next_id(conn, "code_items"),
                run_id=run_id,
                index=index,
                kind=kind,
                source=source,
                started_at=started_at or now(),
                execution_count=execution_count,
                cell_id=cell_id,
            )
            conn.execute(
                "INSERT INTO code_items (id, run_id, idx, kind, source, started_at, status, "
                "execution_count, cell_id) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                (item.id, run_id, index, kind, source, item.started_at, execution_count, cell_id),
            )
            conn.execute("INSERT INTO code_text (rowid, body) VALUES (?, ?)", (item.id, source))
            return item

        return self._write("record code", body)

    def finish_code_item(self, item_id: int, outcome: Outcome) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE code_items SET status = ?, duration = ?, error_type = ?, "
                "error_message = ?, traceback = ?, exit_code = ? WHERE id = ?",
                (
                    outcome.status,
                    outcome.duration,
                    outcome.error_type,
                    outcome.error_message,
                    outcome.traceback,
                    outcome.exit_code,
                    item_id,
                ),
            )
            if outcome.error_type:
                self._index_error(conn, item_id, outcome.error_type, outcome.error_message)

        self._write("record a code outcome", body)

    @staticmethod
    def _index_error(
        conn: sqlite3.Connection, item_id: int, error_type: str, message: str | None
    ) -> None:
        conn.execute(
            "UPDATE code_text SET body = body || char(10) || ? WHERE rowid = ?",
            (f"{error_type}: {message or ''}", item_id),
        )

    def add_thread_error(
        self, item_id: int, thread_name: str, error_type: str, message: str, traceback: str
    ) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO thread_errors (code_item_id, thread_name, error_type, "
                "error_message, traceback, at) VALUES (?, ?, ?, ?, ?, ?)",
                (item_id, thread_name, error_type, message, traceback, now()),
            )
            self._index_error(conn, item_id, error_type, message)

        self._write("record a thread's exception", body)

    def code_items(self, run_id: str, *, limit: int | None = None) -> list[CodeItem]:
        with self._reading("read recorded code") as conn:
            rows = conn.execute(
                f"SELECT {CODE_COLUMNS} FROM code_items WHERE run_id = ? ORDER BY idx DESC LIMIT ?",
                (run_id, -1 if limit is None else limit),
            ).fetchall()
            items = [code_item_from_row(row) for row in rows]
            by_id = {item.id: item for item in items}
            if by_id:
                marks = ", ".join("?" * len(by_id))
                for row in conn.execute(
                    "SELECT code_item_id, thread_name, error_type, error_message, traceback, "
                    f"at FROM thread_errors WHERE code_item_id IN ({marks}) ORDER BY id",
                    list(by_id),
                ):
                    fields = dict(row)
                    by_id[fields.pop("code_item_id")].thread_errors.append(fields)
        return items

    def code_item_count(self, run_id: str) -> int:
        with self._reading("count recorded code") as conn:
            return conn.execute(
                "SELECT COUNT(*) FROM code_items WHERE run_id = ?", (run_id,)
            ).fetchone()[0]

    # Requests --------------------------------------------------------------------------------

    def _open_requests(self, conn: sqlite3.Connection, run_id: str) -> list[Request]:
        rows = conn.execute(
            f"SELECT {REQUEST_COLUMNS} FROM requests WHERE run_id = ? "
            "AND state IN ('pending', 'acknowledged') ORDER BY id",
            (run_id,),
        ).fetchall()
        return [request_from_row(row) for row in rows]

    def create_request(
        self, target_name: str, action: str, requester: str, *, run_id: str | None = None
    ) -> Request:
        def body(conn: sqlite3.Connection) -> Request | ProcessStateError:
            row = conn.execute(_LATEST_RUN, (target_name,)).fetchone()
            if row is None:
                raise ProcessNotFoundError(target_name)
            run = run_from_row(row)
            decision = decide_request(
                run,
                lambda: self._open_requests(conn, run.run_id),
                action,
                alive=self.run_is_alive(run),
                expected_run_id=run_id,
            )
            if decision.crash_first:
                self._finalise(conn, run.run_id, "crashed")
            if decision.refusal is not None:
                return decision.refusal
            plan = decision.plan
            assert plan is not None
            if plan.existing is not None:
                return plan.existing
            at = now()
            for withdrawn in plan.cancel:
                conn.execute(
                    "UPDATE requests SET state = 'cancelled', updated_at = ? WHERE id = ?",
                    (at, withdrawn.id),
                )
            request = Request(
                id=self._next_id(conn, "requests"),
                run_id=run.run_id,
                target_name=run.name,
                action=action,
                requester=requester,
                created_at=at,
                updated_at=at,
                state=plan.new_state,
            )
            conn.execute(
                f"INSERT INTO requests ({REQUEST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request.id,
                    request.run_id,
                    request.target_name,
                    request.action,
                    request.requester,
                    request.created_at,
                    request.updated_at,
                    request.state,
                ),
            )
            return request

        if not isinstance(action, str):
            raise InvalidInputError(f"action must be a string, not {type(action).__name__}")
        outcome = self._write(f"request {action} of {target_name!r}", body)
        if isinstance(outcome, ProcessStateError):
            raise outcome
        return outcome

    def open_requests(self, run_id: str) -> list[Request]:
        with self._reading("read requests") as conn:
            return self._open_requests(conn, run_id)

    def acknowledge_requests(self, request_ids: list[int]) -> None:
        if not request_ids:
            return
        marks = ", ".join("?" * len(request_ids))
        self._write(
            "acknowledge requests",
            lambda conn: conn.execute(
                f"UPDATE requests SET state = 'acknowledged', updated_at = ? "
                f"WHERE state = 'pending' AND id IN ({marks})",
                [now(), *request_ids],
            ),
        )

    def complete_request(self, request_id: int, *, run_status: str | None = None) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            done = conn.execute(
                "UPDATE requests SET state = 'done', updated_at = ? "
                "WHERE id = ? AND state IN ('pending', 'acknowledged') RETURNING run_id",
                (now(), request_id),
            ).fetchone()
            if done is None:
                return False
            if run_status is not None:
                conn.execute(
                    "UPDATE runs SET status = ? WHERE run_id = ? AND ended_at IS NULL",
                    (run_status, done["run_id"]),
                )
            return True

        return self._write("complete a request", body)

    def recent_requests(self, run_id: str, *, limit: int = 20) -> list[Request]:
        with self._reading("read requests") as conn:
            rows = conn.execute(
                f"SELECT {REQUEST_COLUMNS} FROM requests WHERE run_id = ? ORDER BY id DESC LIMIT ?",
                (run_id, limit),
            ).fetchall()
        return [request_from_row(row) for row in rows]

    # Records ---------------------------------------------------------------------------------

    def append_record(self, run_id: str, table: str, data_json: str) -> int:
        def body(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO records (tbl, run_id, process_name, data, created_at) "
                "SELECT ?, run_id, name, ?, ? FROM runs WHERE run_id = ?",
                (table, data_json, now(), run_id),
            )
            if cursor.rowcount != 1:
                raise ProcessNotFoundError(run_id)
            return cursor.lastrowid or 0

        return self._write(f"append a record to {table!r}", body)

    def query_records(self, table: str, *, process_name: str | None = None) -> list[dict[str, Any]]:
        with self._reading(f"read table {table!r}") as conn:
            if process_name is None:
                rows = conn.execute(
                    "SELECT data FROM records WHERE tbl = ? ORDER BY id", (table,)
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT data FROM records WHERE tbl = ? AND process_name = ? ORDER BY id",
                    (table, process_name),
                ).fetchall()
        return [json.loads(row[0]) for row in rows]

    # Search and maintenance ------------------------------------------------------------------

    @staticmethod
    def _text_match(fts_table: str, text: str) -> tuple[str, list[Any]]:
        """SQL selecting the rowids of ``fts_table`` whose body contains ``text``."""
        if len(text) >= _TRIGRAM:
            return f"SELECT rowid FROM {fts_table} WHERE {fts_table} MATCH ?", [_phrase(text)]
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return f"SELECT rowid FROM {fts_table} WHERE body LIKE ? ESCAPE '\\'", [pattern]

    def search_processes(
        self,
        *,
        code_text: str | None = None,
        parent_code_text: str | None = None,
        description_text: str | None = None,
        names: list[str] | None = None,
    ) -> list[str]:
        conditions: list[str] = []
        params: list[Any] = []
        if code_text:
            matching, args = self._text_match("code_text", code_text)
            conditions.append(
                f"r.run_id IN (SELECT run_id FROM code_items WHERE id IN ({matching}))"
            )
            params += args
        if parent_code_text:
            matching, args = self._text_match("code_text", parent_code_text)
            conditions.append(
                "EXISTS (SELECT 1 FROM code_items p WHERE p.run_id = r.parent_run_id "
                "AND (r.parent_index IS NULL OR p.idx = r.parent_index) "
                f"AND p.id IN ({matching}))"
            )
            params += args
        if description_text:
            matching, args = self._text_match("description_text", description_text)
            conditions.append(f"r.rowid IN ({matching})")
            params += args
        if names is not None:
            if not names:
                return []
            conditions.append(f"r.name IN ({', '.join('?' * len(names))})")
            params += names
        where = " AND ".join(conditions) or "1"
        with self._reading("search processes") as conn:
            rows = conn.execute(
                f"SELECT r.name, MAX(r.started_at) AS latest FROM runs r WHERE {where} "
                "GROUP BY r.name ORDER BY latest DESC",
                params,
            ).fetchall()
        return [row["name"] for row in rows]

    def current_operations(self) -> dict[str, list[dict[str, Any]]]:
        with self._reading("read current operations") as conn:
            runs = conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE ended_at IS NULL ORDER BY started_at DESC"
            ).fetchall()
            items = conn.execute(
                f"SELECT {CODE_COLUMNS} FROM code_items WHERE status = 'running' ORDER BY id"
            ).fetchall()
            requests = conn.execute(
                f"SELECT {REQUEST_COLUMNS} FROM requests "
                "WHERE state IN ('pending', 'acknowledged') ORDER BY id"
            ).fetchall()
        running = {}
        for row in items:
            item = code_item_from_row(row)
            running[item.run_id] = item
        processes = []
        for row in runs:
            run = run_from_row(row)
            item = running.get(run.run_id)
            processes.append(
                {
                    "name": run.name,
                    "run_id": run.run_id,
                    "status": run.status,
                    "pid": run.pid,
                    "host": run.host,
                    "id": item.id if item else None,
                    "current_item": item.to_dict() if item else None,
                }
            )
        return {
            "processes": processes,
            "requests": [request_from_row(row).to_dict() for row in requests],
        }

    def cleanup(self, interval: float, selected_ids: list[int] | None = None) -> dict[str, int]:
        def body(conn: sqlite3.Connection) -> dict[str, int]:
            cutoff = now() - interval
            selection = ""
            params: list[Any] = [cutoff]
            if selected_ids is not None:
                selection = f" AND id IN ({', '.join('?' * len(selected_ids))})"
                params += selected_ids
            counts = {"crashed_runs": 0, "lost_items": 0, "expired_requests": 0}

            live = [
                run_from_row(row)
                for row in conn.execute(
                    f"SELECT {RUN_COLUMNS} FROM runs WHERE ended_at IS NULL"
                ).fetchall()
            ]
            silent = [
                run
                for run in self.dead_runs(live)
                if (run.heartbeat_at or run.started_at) <= cutoff
            ]
            if selected_ids is None:
                for run in silent:
                    lost, expired = self._finalise(conn, run.run_id, "crashed")
                    counts["lost_items"] += lost
                    counts["expired_requests"] += expired
                counts["crashed_runs"] = len(silent)
            # Owners that are gone: ended runs, and dead runs kept live by a selection.
            owners_gone = (
                "(run_id IN (SELECT run_id FROM runs WHERE ended_at IS NOT NULL)"
                f" OR run_id IN ({', '.join('?' * len(silent)) or 'NULL'}))"
            )
            silent_ids = [run.run_id for run in silent]
            counts["lost_items"] += conn.execute(
                "UPDATE code_items SET status = 'lost' WHERE status = 'running' "
                f"AND started_at <= ?{selection} AND {owners_gone}",
                [*params, *silent_ids],
            ).rowcount
            counts["expired_requests"] += conn.execute(
                "UPDATE requests SET state = 'expired', updated_at = ? "
                "WHERE state IN ('pending', 'acknowledged') "
                f"AND created_at <= ?{selection} AND {owners_gone}",
                [now(), *params, *silent_ids],
            ).rowcount
            return counts

        return self._write("clean up", body)
