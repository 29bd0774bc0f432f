"""The shared store: one ArangoDB database written by processes on many machines.

Five collections hold what the SQLite store keeps in tables: ``runs`` (keyed by run id),
``code_items``, ``requests``, ``records`` and ``thread_errors`` (keyed by their integer ids, as
strings). Ids are timestamps in microseconds, made unique and increasing by taking one past the
newest id whenever the clock has not moved on.

Every change made of more than one AQL statement runs in a stream transaction that holds the
collections it writes exclusively, so two such changes never interleave (a single statement is
atomic by itself). That is how "one live run per name" holds, which ArangoDB has no partial
unique index to say, and how the ids stay increasing. A change that meets a write-write
conflict or a lock timeout is retried a few times with backoff before it becomes a StoreError.

Searches use AQL's ``CONTAINS`` on lowercased text: a case-insensitive substring match, like
the SQLite store's trigram index, for texts of any length. An ArangoSearch view would avoid the
scan, but views are updated asynchronously, so a cell recorded a moment ago would not be found
yet, and an n-gram index needs grams as short as the shortest text anyone searches for.

Caveats
-------
- A text search reads the code of every run that the other filters leave. That suits the
  runs of a team; a store of millions of code items would need an ArangoSearch view.
- python-arango asks for the later batches of a query result without the transaction header,
  so inside a transaction every query returns a single row (a list when it needs many).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, TypeVar

from arango import ArangoClient, errno
from arango.database import Database, StandardDatabase
from arango.exceptions import ArangoError, ArangoServerError
from requests import RequestException

from ..config import TableVaultSettings
from ..errors import (
    InvalidInputError,
    NameTakenError,
    ProcessNotFoundError,
    ProcessStateError,
    StoreError,
    StoreUnavailableError,
)
from .base import Store
from .records import OPEN_REQUEST_STATES, CodeItem, Outcome, ProcessRecord, Request, now
from .rules import decide_request

T = TypeVar("T")

logger = logging.getLogger(__name__)

COLLECTIONS = ("runs", "code_items", "requests", "records", "thread_errors")

# The persistent indexes the queries below rely on. None is unique: a cluster refuses unique
# indexes that do not contain the shard key, and the keys and the exclusive transactions
# already keep ids and item indexes unique.
_INDEXES: dict[str, list[list[str]]] = {
    "runs": [["name", "started_at"], ["ended_at"], ["parent_run_id"], ["started_at"]],
    "code_items": [["run_id", "idx"], ["status"], ["id"]],
    "requests": [["run_id", "state"], ["state"], ["id"]],
    "records": [["tbl", "id"], ["tbl", "process_name", "id"], ["id"]],
    "thread_errors": [["code_item_id"], ["id"]],
}

_DRIVER_ERRORS = (ArangoError, RequestException, ConnectionError)
# Server error numbers that mean the store cannot be used at all, rather than one failed call.
_UNAVAILABLE = frozenset(
    {
        errno.FORBIDDEN,
        errno.HTTP_UNAUTHORIZED,
        errno.HTTP_FORBIDDEN,
        errno.HTTP_SERVICE_UNAVAILABLE,
        errno.SHUTTING_DOWN,
        errno.DATABASE_NOT_FOUND,
        errno.CLUSTER_CONNECTION_LOST,
    }
)
# What creating a collection or index that another process has just created answers.
_ALREADY_THERE = frozenset({errno.DUPLICATE_NAME, errno.DUPLICATE_IDENTIFIER})
# Error numbers of a change that lost a race and may succeed when tried again.
_RETRYABLE = frozenset({errno.CONFLICT, errno.LOCK_TIMEOUT, errno.DEADLOCK})
_ATTEMPTS = 6
_FIRST_DELAY = 0.05

# Characters ArangoDB accepts in a document key.
_KEY = re.compile(r"[A-Za-z0-9_\-:.@()+,=;$!*'%]{1,254}")
_OPEN = list(OPEN_REQUEST_STATES)

_RUN_FIELDS = tuple(field.name for field in fields(ProcessRecord))
_REQUEST_FIELDS = tuple(field.name for field in fields(Request))
_CODE_FIELDS = tuple(
    field.name for field in fields(CodeItem) if field.name not in ("index", "thread_errors")
)
_THREAD_ERROR_FIELDS = ["thread_name", "error_type", "error_message", "traceback", "at"]


def _translate(what: str, exc: BaseException) -> StoreError:
    """Our error for a driver error met while trying to do ``what``."""
    if isinstance(exc, ArangoServerError):
        kind = StoreUnavailableError if exc.error_code in _UNAVAILABLE else StoreError
        detail = exc.error_message or exc.message
        return kind(f"cannot {what} in ArangoDB: {detail} (error {exc.error_code})")
    if isinstance(exc, (RequestException, ConnectionError)):
        return StoreUnavailableError(f"cannot {what}: ArangoDB cannot be reached ({exc})")
    return StoreError(f"cannot {what} in ArangoDB: {exc}")


def _call(what: str, action: Callable[[], T], *, retry: bool = True) -> T:
    """Run ``action``, retrying lost races, with driver errors turned into StoreError."""
    delay = _FIRST_DELAY
    for attempt in range(_ATTEMPTS):
        try:
            return action()
        except ArangoServerError as exc:
            if retry and exc.error_code in _RETRYABLE and attempt < _ATTEMPTS - 1:
                logger.debug("retrying %s after ArangoDB error %s", what, exc.error_code)
                time.sleep(delay)
                delay *= 2
                continue
            raise _translate(what, exc) from exc
        except _DRIVER_ERRORS as exc:
            raise _translate(what, exc) from exc
    raise AssertionError("unreachable: the last attempt returns or raises")


def _key(run_id: str) -> str:
    if not isinstance(run_id, str) or not _KEY.fullmatch(run_id):
        raise InvalidInputError(f"run id {run_id!r} is not a valid ArangoDB document key")
    return run_id


def _rows(db: Database, query: str, **bind_vars: Any) -> list[Any]:
    return list(db.aql.execute(query, bind_vars=bind_vars))


def _one(db: Database, query: str, **bind_vars: Any) -> Any:
    rows = _rows(db, query, **bind_vars)
    return rows[0] if rows else None


def _run(doc: dict[str, Any]) -> ProcessRecord:
    return ProcessRecord(**{name: doc[name] for name in _RUN_FIELDS if name in doc})


def _request(doc: dict[str, Any]) -> Request:
    values = {name: doc[name] for name in _REQUEST_FIELDS if name in doc}
    values["id"] = int(values["id"])
    return Request(**values)


def _code_item(doc: dict[str, Any]) -> CodeItem:
    values = {name: doc.get(name) for name in _CODE_FIELDS}
    values["id"] = int(values["id"])
    return CodeItem(index=doc["idx"], thread_errors=list(doc.get("thread_errors") or []), **values)


def _owner_gone(variable: str) -> str:
    """AQL true when the run owning ``variable`` has ended, or is in ``@silent`` (dead runs a
    selection keeps live)."""
    return (
        f"({variable}.run_id IN @silent OR FIRST(FOR r IN runs "
        f"FILTER r._key == {variable}.run_id RETURN r.ended_at) != null)"
    )


def _error_text(error_type: str | None, message: str | None) -> str | None:
    """What an error adds to its code item's searchable text (as in the SQLite store)."""
    return f"{error_type}: {message or ''}" if error_type else None


class ArangoStore(Store):
    """A :class:`Store` in one ArangoDB database."""

    def __init__(
        self,
        db: StandardDatabase,
        *,
        stale_after: float = 30.0,
        client: ArangoClient | None = None,
    ) -> None:
        super().__init__(stale_after)
        self._db = db
        self._client = client
        _call("create the collections", self._create_schema)

    @classmethod
    def from_settings(
        cls,
        settings: TableVaultSettings,
        *,
        create_database: bool = True,
        root_username: str | None = None,
        root_password: str | None = None,
    ) -> ArangoStore:
        """Connect to ``settings.arango_db`` on ``settings.arango_url``.

        A database that does not exist yet is created through ``_system`` when
        ``create_database`` is true, with the root credentials when they are given (the
        settings' user then gets read-write access to it); otherwise it is an error.
        """
        client = ArangoClient(hosts=settings.arango_url)
        try:
            db = client.db(
                settings.arango_db,
                username=settings.arango_username,
                password=settings.arango_password,
            )
            if not cls._database_exists(db, settings):
                if not create_database:
                    raise StoreUnavailableError(
                        f"ArangoDB database {settings.arango_db!r} does not exist at "
                        f"{settings.arango_url}"
                    )
                cls._create_database(client, settings, root_username, root_password)
            return cls(db, stale_after=settings.stale_after, client=client)
        except BaseException:
            client.close()
            raise

    @staticmethod
    def _database_exists(db: StandardDatabase, settings: TableVaultSettings) -> bool:
        try:
            db.properties()
        except ArangoServerError as exc:
            if exc.error_code == errno.DATABASE_NOT_FOUND:
                return False
            raise _translate(f"open database {settings.arango_db!r}", exc) from exc
        except _DRIVER_ERRORS as exc:
            raise _translate(f"open database {settings.arango_db!r}", exc) from exc
        return True

    @staticmethod
    def _create_database(
        client: ArangoClient,
        settings: TableVaultSettings,
        root_username: str | None,
        root_password: str | None,
    ) -> None:
        name = settings.arango_db
        username = root_username or settings.arango_username
        password = root_password if root_username else settings.arango_password
        system = client.db("_system", username=username, password=password or "")

        def create() -> None:
            try:
                system.create_database(name)
                logger.info("created ArangoDB database %r", name)
            except ArangoServerError as exc:
                # Another process created it between our look and our attempt.
                if exc.error_code != errno.DUPLICATE_NAME:
                    raise
            if username != settings.arango_username:
                system.update_permission(settings.arango_username, "rw", database=name)

        _call(f"create database {name!r}", create, retry=False)

    def _create_schema(self) -> None:
        existing = {collection["name"] for collection in self._db.collections()}
        for name in COLLECTIONS:
            if name not in existing:
                try:
                    self._db.create_collection(name)
                except ArangoServerError as exc:
                    # Two processes opening a new database both try to create it.
                    if exc.error_code not in _ALREADY_THERE:
                        raise
            collection = self._db.collection(name)
            indexes = {index.get("name") for index in collection.indexes()}
            for index_fields in _INDEXES[name]:
                index_name = f"{name}_{'_'.join(index_fields)}"
                if index_name in indexes:
                    continue
                try:
                    collection.add_index(
                        {
                            "type": "persistent",
                            "fields": index_fields,
                            "name": index_name,
                        }
                    )
                except ArangoServerError as exc:
                    if exc.error_code not in _ALREADY_THERE:
                        raise

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # Transactions ---------------------------------------------------------------------------

    def _transaction(
        self,
        what: str,
        body: Callable[[Database], T],
        *,
        exclusive: Sequence[str],
        read: Sequence[str] = (),
    ) -> T:
        """Run ``body`` in one stream transaction, committed when it returns."""

        def attempt() -> T:
            txn = self._db.begin_transaction(read=list(read), exclusive=list(exclusive))
            try:
                result = body(txn)
            except BaseException:
                try:
                    txn.abort_transaction()
                except _DRIVER_ERRORS as exc:
                    # The server aborts it by itself once its idle timeout passes.
                    logger.warning(
                        "cannot abort ArangoDB transaction %s: %s", txn.transaction_id, exc
                    )
                raise
            txn.commit_transaction()
            return result

        return _call(what, attempt)

    @staticmethod
    def _next_id(db: Database, collection: str) -> int:
        """A timestamp id: microseconds now, or one past the newest id if that is later.

        The caller holds ``collection`` exclusively, so nobody takes the same id meanwhile.
        """
        newest = _one(
            db,
            "FOR d IN @@collection SORT d.id DESC LIMIT 1 RETURN d.id",
            **{"@collection": collection},
        )
        return max(int(now() * 1_000_000), int(newest or 0) + 1)

    @staticmethod
    def _insert(db: Database, collection: str, document: dict[str, Any]) -> None:
        _rows(
            db,
            "INSERT @document INTO @@collection",
            document=document,
            **{"@collection": collection},
        )

    # Runs ------------------------------------------------------------------------------------

    @staticmethod
    def _live_run(db: Database, name: str) -> ProcessRecord | None:
        doc = _one(
            db,
            "FOR r IN runs FILTER r.name == @name AND r.ended_at == null LIMIT 1 RETURN r",
            name=name,
        )
        return _run(doc) if doc else None

    @staticmethod
    def _finalise(
        db: Database,
        run_id: str,
        status: str,
        *,
        exit_status: int | None = None,
        stopped_by: str | None = None,
    ) -> tuple[int, int]:
        """End a run; returns how many of its code items were lost and requests expired."""
        at = now()
        _rows(
            db,
            "FOR r IN runs FILTER r._key == @run_id AND r.ended_at == null "
            "UPDATE r WITH {status: @status, ended_at: @at, "
            "exit_status: @exit_status == null ? r.exit_status : @exit_status, "
            "stopped_by: @stopped_by == null ? r.stopped_by : @stopped_by} IN runs",
            run_id=run_id,
            status=status,
            at=at,
            exit_status=exit_status,
            stopped_by=stopped_by,
        )
        expired = _one(
            db,
            "LET changed = (FOR q IN requests FILTER q.run_id == @run_id AND q.state IN @open "
            "UPDATE q WITH {state: 'expired', updated_at: @at} IN requests RETURN 1) "
            "RETURN LENGTH(changed)",
            run_id=run_id,
            open=_OPEN,
            at=at,
        )
        lost = _one(
            db,
            "LET changed = (FOR c IN code_items FILTER c.run_id == @run_id "
            "AND c.status == 'running' UPDATE c WITH {status: 'lost'} IN code_items RETURN 1) "
            "RETURN LENGTH(changed)",
            run_id=run_id,
        )
        return lost, expired

    def _claim_name(self, db: Database, name: str, run_id: str) -> None:
        holder = self._live_run(db, name)
        if holder is None or holder.run_id == run_id:
            return
        if self.run_is_alive(holder):
            raise NameTakenError(name, holder.pid, holder.host)
        self._finalise(db, holder.run_id, "crashed")

    def register_run(self, run: ProcessRecord) -> ProcessRecord:
        key = _key(run.run_id)

        def body(db: Database) -> ProcessRecord:
            self._claim_name(db, run.name, run.run_id)
            self._insert(db, "runs", {"_key": key, **run.to_dict()})
            return run

        return self._transaction(
            f"register process {run.name!r}",
            body,
            exclusive=["runs", "requests", "code_items"],
        )

    def rename_run(
        self,
        run_id: str,
        name: str,
        *,
        user_id: str | None = None,
        description: str | None = None,
    ) -> ProcessRecord:
        def body(db: Database) -> ProcessRecord:
            if _one(db, "FOR r IN runs FILTER r._key == @run_id RETURN 1", run_id=run_id) is None:
                raise ProcessNotFoundError(run_id)
            self._claim_name(db, name, run_id)
            doc = _one(
                db,
                "FOR r IN runs FILTER r._key == @run_id UPDATE r WITH {name: @name, "
                "user_id: @user_id == null ? r.user_id : @user_id, "
                "description: @description == null ? r.description : @description} "
                "IN runs RETURN NEW",
                run_id=run_id,
                name=name,
                user_id=user_id,
                description=description,
            )
            _rows(
                db,
                "FOR q IN requests FILTER q.run_id == @run_id "
                "UPDATE q WITH {target_name: @name} IN requests",
                run_id=run_id,
                name=name,
            )
            _rows(
                db,
                "FOR r IN runs FILTER r.parent_run_id == @run_id "
                "UPDATE r WITH {parent_name: @name} IN runs",
                run_id=run_id,
                name=name,
            )
            return _run(doc)

        return self._transaction(
            f"rename a process to {name!r}",
            body,
            exclusive=["runs", "requests", "code_items"],
        )

    def heartbeat(
        self, run_id: str, checkpoint_count: int, last_checkpoint_at: float | None
    ) -> None:
        _call(
            "record a heartbeat",
            lambda: _rows(
                self._db,
                "FOR r IN runs FILTER r._key == @run_id UPDATE r WITH {heartbeat_at: @at, "
                "checkpoint_count: @count, "
                "last_checkpoint_at: @last == null ? r.last_checkpoint_at : @last} IN runs",
                run_id=run_id,
                at=now(),
                count=checkpoint_count,
                last=last_checkpoint_at,
            ),
        )

    def set_run_status(self, run_id: str, status: str) -> None:
        _call(
            f"mark a process {status}",
            lambda: _rows(
                self._db,
                "FOR r IN runs FILTER r._key == @run_id AND r.ended_at == null "
                "UPDATE r WITH {status: @status} IN runs",
                run_id=run_id,
                status=status,
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
        self._transaction(
            "end a process run",
            lambda db: self._finalise(
                db, run_id, status, exit_status=exit_status, stopped_by=stopped_by
            ),
            exclusive=["runs", "requests", "code_items"],
        )

    def get_run(
        self, *, name: str | None = None, run_id: str | None = None
    ) -> ProcessRecord | None:
        if run_id is not None:
            query, bind = "FOR r IN runs FILTER r._key == @run_id RETURN r", {"run_id": run_id}
        elif name is not None:
            query = (
                "FOR r IN runs FILTER r.name == @name "
                "SORT r.ended_at == null DESC, r.started_at DESC LIMIT 1 RETURN r"
            )
            bind = {"name": name}
        else:
            return None
        doc = _call("look up a process", lambda: _one(self._db, query, **bind))
        return _run(doc) if doc else None

    def list_runs(self, *, live_only: bool = True) -> list[ProcessRecord]:
        where = "FILTER r.ended_at == null" if live_only else ""
        docs = _call(
            "list processes",
            lambda: _rows(self._db, f"FOR r IN runs {where} SORT r.started_at DESC RETURN r"),
        )
        return [_run(doc) for doc in docs]

    # Code ------------------------------------------------------------------------------------

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
        def body(db: Database) -> CodeItem:
            newest = _one(
                db,
                "FOR c IN code_items FILTER c.run_id == @run_id "
                "SORT c.idx DESC LIMIT 1 RETURN c.idx",
                run_id=run_id,
            )
            item = CodeItem(
                id=self._next_id(db, "code_items"),
                run_id=run_id,
                index=0 if newest is None else newest + 1,
                kind=kind,
                source=source,
                started_at=started_at or now(),
                execution_count=execution_count,
                cell_id=cell_id,
            )
            document = {name: getattr(item, name) for name in _CODE_FIELDS}
            self._insert(
                db,
                "code_items",
                {
                    **document,
                    "_key": str(item.id),
                    "idx": item.index,
                    "search_text": source,
                },
            )
            return item

        return self._transaction("record code", body, exclusive=["code_items"])

    def finish_code_item(self, item_id: int, outcome: Outcome) -> None:
        _call(
            "record a code outcome",
            lambda: _rows(
                self._db,
                "FOR c IN code_items FILTER c._key == @key UPDATE c WITH {status: @status, "
                "duration: @duration, error_type: @error_type, error_message: @error_message, "
                "traceback: @traceback, exit_code: @exit_code, search_text: @error == null "
                "? c.search_text : CONCAT(c.search_text, '\\n', @error)} IN code_items",
                key=str(item_id),
                status=outcome.status,
                duration=outcome.duration,
                error_type=outcome.error_type,
                error_message=outcome.error_message,
                traceback=outcome.traceback,
                exit_code=outcome.exit_code,
                error=_error_text(outcome.error_type, outcome.error_message),
            ),
        )

    def add_thread_error(
        self, item_id: int, thread_name: str, error_type: str, message: str, traceback: str
    ) -> None:
        def body(db: Database) -> None:
            error_id = self._next_id(db, "thread_errors")
            self._insert(
                db,
                "thread_errors",
                {
                    "_key": str(error_id),
                    "id": error_id,
                    "code_item_id": item_id,
                    "thread_name": thread_name,
                    "error_type": error_type,
                    "error_message": message,
                    "traceback": traceback,
                    "at": now(),
                },
            )
            _rows(
                db,
                "FOR c IN code_items FILTER c._key == @key UPDATE c WITH "
                "{search_text: CONCAT(c.search_text, '\\n', @error)} IN code_items",
                key=str(item_id),
                error=_error_text(error_type, message),
            )

        self._transaction(
            "record a thread's exception", body, exclusive=["thread_errors", "code_items"]
        )

    def code_items(self, run_id: str, *, limit: int | None = None) -> list[CodeItem]:
        limit_clause = "" if limit is None else "LIMIT @limit"
        bind: dict[str, Any] = {"run_id": run_id, "fields": _THREAD_ERROR_FIELDS}
        if limit is not None:
            bind["limit"] = limit
        docs = _call(
            "read recorded code",
            lambda: _rows(
                self._db,
                f"FOR c IN code_items FILTER c.run_id == @run_id SORT c.idx DESC {limit_clause} "
                "LET errors = (FOR e IN thread_errors FILTER e.code_item_id == c.id SORT e.id "
                "RETURN KEEP(e, @fields)) "
                "RETURN MERGE(c, {thread_errors: errors})",
                **bind,
            ),
        )
        return [_code_item(doc) for doc in docs]

    def code_item_count(self, run_id: str) -> int:
        return int(
            _call(
                "count recorded code",
                lambda: _one(
                    self._db,
                    "LET found = (FOR c IN code_items FILTER c.run_id == @run_id RETURN 1) "
                    "RETURN LENGTH(found)",
                    run_id=run_id,
                ),
            )
        )

    # Requests --------------------------------------------------------------------------------

    @staticmethod
    def _open_requests(db: Database, run_id: str) -> list[Request]:
        docs = _one(
            db,
            "RETURN (FOR q IN requests FILTER q.run_id == @run_id AND q.state IN @open "
            "SORT q.id RETURN q)",
            run_id=run_id,
            open=_OPEN,
        )
        return [_request(doc) for doc in docs or []]

    def create_request(
        self, target_name: str, action: str, requester: str, *, run_id: str | None = None
    ) -> Request:
        def body(db: Database) -> Request | ProcessStateError:
            doc = _one(
                db,
                "FOR r IN runs FILTER r.name == @name "
                "SORT r.ended_at == null DESC, r.started_at DESC LIMIT 1 RETURN r",
                name=target_name,
            )
            if doc is None:
                raise ProcessNotFoundError(target_name)
            run = _run(doc)
            decision = decide_request(
                run,
                lambda: self._open_requests(db, run.run_id),
                action,
                alive=self.run_is_alive(run),
                expected_run_id=run_id,
            )
            if decision.crash_first:
                self._finalise(db, run.run_id, "crashed")
            if decision.refusal is not None:
                return decision.refusal
            plan = decision.plan
            assert plan is not None
            if plan.existing is not None:
                return plan.existing
            at = now()
            for withdrawn in plan.cancel:
                _rows(
                    db,
                    "FOR q IN requests FILTER q._key == @key "
                    "UPDATE q WITH {state: 'cancelled', updated_at: @at} IN requests",
                    key=str(withdrawn.id),
                    at=at,
                )
            request = Request(
                id=self._next_id(db, "requests"),
                run_id=run.run_id,
                target_name=run.name,
                action=action,
                requester=requester,
                created_at=at,
                updated_at=at,
                state=plan.new_state,
            )
            self._insert(db, "requests", {"_key": str(request.id), **request.to_dict()})
            return request

        if not isinstance(action, str):
            raise InvalidInputError(f"action must be a string, not {type(action).__name__}")
        outcome = self._transaction(
            f"request {action} of {target_name!r}",
            body,
            exclusive=["runs", "requests", "code_items"],
        )
        if isinstance(outcome, ProcessStateError):
            raise outcome
        return outcome

    def open_requests(self, run_id: str) -> list[Request]:
        return _call("read requests", lambda: self._open_requests(self._db, run_id))

    def acknowledge_requests(self, request_ids: list[int]) -> None:
        if not request_ids:
            return
        _call(
            "acknowledge requests",
            lambda: _rows(
                self._db,
                "FOR q IN requests FILTER q._key IN @keys AND q.state == 'pending' "
                "UPDATE q WITH {state: 'acknowledged', updated_at: @at} IN requests",
                keys=[str(request_id) for request_id in request_ids],
                at=now(),
            ),
        )

    def complete_request(self, request_id: int, *, run_status: str | None = None) -> bool:
        def body(db: Database) -> bool:
            run_id = _one(
                db,
                "FOR q IN requests FILTER q._key == @key AND q.state IN @open "
                "UPDATE q WITH {state: 'done', updated_at: @at} IN requests RETURN NEW.run_id",
                key=str(request_id),
                open=_OPEN,
                at=now(),
            )
            if run_id is None:
                return False
            if run_status is not None:
                _rows(
                    db,
                    "FOR r IN runs FILTER r._key == @run_id AND r.ended_at == null "
                    "UPDATE r WITH {status: @status} IN runs",
                    run_id=run_id,
                    status=run_status,
                )
            return True

        return self._transaction("complete a request", body, exclusive=["requests", "runs"])

    def recent_requests(self, run_id: str, *, limit: int = 20) -> list[Request]:
        docs = _call(
            "read requests",
            lambda: _rows(
                self._db,
                "FOR q IN requests FILTER q.run_id == @run_id SORT q.id DESC LIMIT @limit RETURN q",
                run_id=run_id,
                limit=limit,
            ),
        )
        return [_request(doc) for doc in docs]

    # Records ---------------------------------------------------------------------------------

    def append_record(self, run_id: str, table: str, data_json: str) -> int:
        def body(db: Database) -> int:
            name = _one(db, "FOR r IN runs FILTER r._key == @run_id RETURN r.name", run_id=run_id)
            if name is None:
                raise ProcessNotFoundError(run_id)
            record_id = self._next_id(db, "records")
            # Kept as the JSON text it came as, so it reads back exactly as written (NaN and
            # all), as from the SQLite store.
            self._insert(
                db,
                "records",
                {
                    "_key": str(record_id),
                    "id": record_id,
                    "tbl": table,
                    "run_id": run_id,
                    "process_name": name,
                    "data": data_json,
                    "created_at": now(),
                },
            )
            return record_id

        return self._transaction(
            f"append a record to {table!r}", body, exclusive=["records"], read=["runs"]
        )

    def query_records(self, table: str, *, process_name: str | None = None) -> list[dict[str, Any]]:
        if process_name is None:
            query, bind = (
                "FOR d IN records FILTER d.tbl == @table SORT d.id RETURN d.data",
                {"table": table},
            )
        else:
            query = (
                "FOR d IN records FILTER d.tbl == @table AND d.process_name == @process_name "
                "SORT d.id RETURN d.data"
            )
            bind = {"table": table, "process_name": process_name}
        rows = _call(f"read table {table!r}", lambda: _rows(self._db, query, **bind))
        return [json.loads(row) for row in rows]

    # Search and maintenance ------------------------------------------------------------------

    def search_processes(
        self,
        *,
        code_text: str | None = None,
        parent_code_text: str | None = None,
        description_text: str | None = None,
        names: list[str] | None = None,
    ) -> list[str]:
        # Only fixed AQL fragments are joined here; every value the caller gave is bound.
        clauses: list[str] = []
        bind: dict[str, Any] = {}
        if names is not None:
            if not names:
                return []
            clauses.append("FILTER r.name IN @names")
            bind["names"] = names
        if description_text:
            clauses.append("FILTER CONTAINS(LOWER(r.description), LOWER(@description_text))")
            bind["description_text"] = description_text
        if code_text:
            clauses.append(
                "LET code_hits = (FOR c IN code_items FILTER c.run_id == r.run_id "
                "AND CONTAINS(LOWER(c.search_text), LOWER(@code_text)) LIMIT 1 RETURN 1) "
                "FILTER LENGTH(code_hits) > 0"
            )
            bind["code_text"] = code_text
        if parent_code_text:
            clauses.append(
                "FILTER r.parent_run_id != null "
                "LET parent_hits = (FOR p IN code_items FILTER p.run_id == r.parent_run_id "
                "AND (r.parent_index == null OR p.idx == r.parent_index) "
                "AND CONTAINS(LOWER(p.search_text), LOWER(@parent_code_text)) "
                "LIMIT 1 RETURN 1) "
                "FILTER LENGTH(parent_hits) > 0"
            )
            bind["parent_code_text"] = parent_code_text
        query = (
            f"FOR r IN runs {' '.join(clauses)} "
            "COLLECT name = r.name AGGREGATE latest = MAX(r.started_at) "
            "SORT latest DESC RETURN name"
        )
        return _call("search processes", lambda: _rows(self._db, query, **bind))

    def current_operations(self) -> dict[str, list[dict[str, Any]]]:
        # One query, so the runs, their items and the requests come from one snapshot.
        found = _call(
            "read current operations",
            lambda: _one(
                self._db,
                "RETURN {"
                "'runs': (FOR r IN runs FILTER r.ended_at == null SORT r.started_at DESC "
                "RETURN r), "
                "'items': (FOR c IN code_items FILTER c.status == 'running' SORT c.id RETURN c), "
                "'requests': (FOR q IN requests FILTER q.state IN @open SORT q.id RETURN q)}",
                open=_OPEN,
            ),
        )
        running = {}
        for doc in found["items"]:
            item = _code_item(doc)
            running[item.run_id] = item
        processes = []
        for doc in found["runs"]:
            run = _run(doc)
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
            "requests": [_request(doc).to_dict() for doc in found["requests"]],
        }

    def cleanup(self, interval: float, selected_ids: list[int] | None = None) -> dict[str, int]:
        def body(db: Database) -> dict[str, int]:
            cutoff = now() - interval
            counts = {"crashed_runs": 0, "lost_items": 0, "expired_requests": 0}

            live = [
                _run(doc)
                for doc in _one(db, "RETURN (FOR r IN runs FILTER r.ended_at == null RETURN r)")
            ]
            silent = [
                run
                for run in self.dead_runs(live)
                if (run.heartbeat_at or run.started_at) <= cutoff
            ]
            if selected_ids is None:
                for run in silent:
                    lost, expired = self._finalise(db, run.run_id, "crashed")
                    counts["lost_items"] += lost
                    counts["expired_requests"] += expired
                counts["crashed_runs"] = len(silent)

            bind = {
                "cutoff": cutoff,
                "selected": selected_ids,
                "silent": [run.run_id for run in silent],
            }
            counts["lost_items"] += _one(
                db,
                "LET changed = (FOR c IN code_items FILTER c.status == 'running' "
                "AND c.started_at <= @cutoff AND (@selected == null OR c.id IN @selected) "
                f"AND {_owner_gone('c')} UPDATE c WITH {{status: 'lost'}} IN code_items "
                "RETURN 1) RETURN LENGTH(changed)",
                **bind,
            )
            counts["expired_requests"] += _one(
                db,
                "LET changed = (FOR q IN requests FILTER q.state IN @open "
                "AND q.created_at <= @cutoff AND (@selected == null OR q.id IN @selected) "
                f"AND {_owner_gone('q')} UPDATE q WITH {{state: 'expired', updated_at: @at}} "
                "IN requests RETURN 1) RETURN LENGTH(changed)",
                open=_OPEN,
                at=now(),
                **bind,
            )
            return counts

        return self._transaction("clean up", body, exclusive=["runs", "code_items", "requests"])
