"""The ``tablevault`` command: see the registered processes, and stop, pause or resume them.

::

    tablevault ps [--all] [--json]
    tablevault show NAME [--limit N] [--json]
    tablevault stop|pause|resume NAME [--json]
    tablevault cleanup [--interval S] [--ids ID ...] [--json]
    tablevault search [--code TEXT] [--parent-code TEXT] [--description TEXT] [--name NAME ...]
    tablevault records TABLE [--process NAME] [--json]
    tablevault demo [ARGS ...]

Tables are for people; ``--json`` prints the same records as JSON, for scripts. The exit
status is 0 on success, 1 when tablevault refuses or fails (the reason on one line of stderr)
and 2 for a command line that cannot be parsed. Requests are signed ``user@host (cli)``.

Caveats:

- ``stop``, ``pause`` and ``resume`` only record a request and return; the process acts on it
  at its next checkpoint. ``show`` tells when it has.
- CHECKPOINTS and LAST CHECKPOINT come from the process's heartbeat, so they lag by up to
  TABLEVAULT_HEARTBEAT_INTERVAL seconds.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

from traitlets import TraitError

from .client import VaultClient
from .config import TableVaultSettings
from .errors import InvalidInputError, TableVaultError
from .formatting import (
    ago,
    cell,
    clock,
    duration,
    one_line,
    open_requests,
    plural,
    process_table,
    status_text,
    text_table,
)
from .identity import current_user, host_name
from .store import CodeItem, ProcessRecord, Request

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_DEFAULT_LIMIT = 10


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors fit on one line of stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# Commands ------------------------------------------------------------------------------------


def _ps(client: VaultClient, args: argparse.Namespace) -> int:
    runs = client.list_processes(live_only=not args.all)
    seen = [(run, client.is_alive(run), open_requests(client, run)) for run in runs]

    if args.json:
        _print_json(
            [
                {
                    **run.to_dict(),
                    "alive": alive,
                    "open_requests": [request.to_dict() for request in opened],
                }
                for run, alive, opened in seen
            ]
        )
        return EXIT_OK
    if not seen:
        print(
            "no processes registered"
            if args.all
            else "no processes running (--all shows those that ended)"
        )
        return EXIT_OK
    print(process_table(client, runs))
    return EXIT_OK


def _show(client: VaultClient, args: argparse.Namespace) -> int:
    run = client.get_process(args.name)
    alive = client.is_alive(run)
    opened = open_requests(client, run)
    items = list(reversed(client.store.code_items(run.run_id, limit=args.limit)))
    item_count = client.store.code_item_count(run.run_id)
    requests = list(reversed(client.store.recent_requests(run.run_id, limit=args.limit)))

    if args.json:
        _print_json(
            {
                "process": run.to_dict(),
                "alive": alive,
                "code": [item.to_dict() for item in items],
                "code_count": item_count,
                "requests": [request.to_dict() for request in requests],
            }
        )
        return EXIT_OK
    at = time.time()
    print("\n".join(_describe_run(run, status_text(run, alive, opened), at)))
    print()
    print("\n".join(_describe_code(items, item_count, at)))
    print()
    print("\n".join(_describe_requests(requests, args.limit, at)))
    return EXIT_OK


def _describe_run(run: ProcessRecord, status: str, at: float) -> list[str]:
    fields = [
        ("name", run.name),
        ("kind", run.kind),
        ("status", status),
        ("user", run.user_id),
        ("host", run.host),
        ("pid", str(run.pid)),
        ("started", f"{ago(run.started_at, at)} ({clock(run.started_at)})"),
        ("last checkpoint", ago(run.last_checkpoint_at, at)),
        ("checkpoints", str(run.checkpoint_count)),
    ]
    if run.description:
        fields.append(("description", one_line(run.description, width=200)))
    if run.parent_name:
        index = "" if run.parent_index is None else f", code item {run.parent_index}"
        fields.append(("parent", f"{run.parent_name}{index}"))
    if run.ended_at is not None:
        ended = [f"{ago(run.ended_at, at)} ({clock(run.ended_at)})"]
        if run.exit_status is not None:
            ended.append(f"exit status {run.exit_status}")
        if run.stopped_by:
            ended.append(f"stopped by {run.stopped_by}")
        fields.append(("ended", ", ".join(ended)))
    fields.append(("run id", run.run_id))
    width = max(len(label) for label, _ in fields)
    return [f"{label.ljust(width)}  {value}" for label, value in fields]


def _describe_code(items: list[CodeItem], item_count: int, at: float) -> list[str]:
    if not items:
        return ["code: none recorded"]
    title = (
        f"code: the last {len(items)} of {item_count} items"
        if len(items) < item_count
        else f"code: {plural(item_count, 'item')}"
    )
    rows = [
        (
            str(item.index),
            item.kind,
            item.status,
            ago(item.started_at, at),
            duration(item.duration),
            one_line(item.source),
        )
        for item in items
    ]
    lines = text_table(("#", "KIND", "STATUS", "STARTED", "DURATION", "SOURCE"), rows, right={0})
    out = [title, "  " + lines[0]]
    for item, line in zip(items, lines[1:], strict=True):
        out.append("  " + line)
        if item.error_type:
            out.append(f"      {item.error_type}: {one_line(item.error_message or '', 200)}")
        for error in item.thread_errors:
            message = one_line(str(error.get("error_message") or ""), 200)
            out.append(
                f"      in thread {error.get('thread_name')}: {error.get('error_type')}: {message}"
            )
    return out


def _describe_requests(requests: list[Request], limit: int, at: float) -> list[str]:
    if not requests:
        return ["requests: none"]
    rows = [
        (
            str(request.id),
            request.action,
            request.state,
            request.requester,
            ago(request.created_at, at),
        )
        for request in requests
    ]
    lines = text_table(("ID", "ACTION", "STATE", "REQUESTER", "MADE"), rows)
    count = f"the last {limit}" if len(requests) == limit else str(len(requests))
    return [f"requests: {count}", *("  " + line for line in lines)]


def _control(client: VaultClient, args: argparse.Namespace) -> int:
    ask: Callable[[str], Request] = {
        "stop": client.stop_execution,
        "pause": client.pause_execution,
        "resume": client.resume_execution,
    }[args.command]
    request = ask(args.name)

    if args.json:
        _print_json(request.to_dict())
        return EXIT_OK
    when = "; the process acts on it at its next checkpoint" if request.open else ""
    print(
        f"{request.action} {request.target_name!r}: request {request.id} is {request.state}{when}"
    )
    return EXIT_OK


def _cleanup(client: VaultClient, args: argparse.Namespace) -> int:
    before = client.list_processes(live_only=True) if args.ids is None else []
    counts = client.vault_cleanup(args.interval, args.ids)
    after = (client.store.get_run(run_id=run.run_id) for run in before)
    crashed = [run for run in after if run is not None and run.status == "crashed"]

    if args.json:
        _print_json({**counts, "crashed": [run.to_dict() for run in crashed]})
        return EXIT_OK
    if not any(counts.values()):
        print("nothing to clean up")
        return EXIT_OK
    print(
        f"cleaned up: {plural(counts.get('crashed_runs', 0), 'crashed run')}, "
        f"{plural(counts.get('lost_items', 0), 'lost code item')}, "
        f"{plural(counts.get('expired_requests', 0), 'expired request')}"
    )
    for run in crashed:
        print(f"crashed: {run.name} (pid {run.pid} on {run.host}, started {clock(run.started_at)})")
    return EXIT_OK


def _search(client: VaultClient, args: argparse.Namespace) -> int:
    names = client.query_process_list(
        code_text=args.code,
        parent_code_text=args.parent_code,
        description_text=args.description,
        filtered=args.names,
    )

    if args.json:
        _print_json(names)
    elif names:
        print("\n".join(names))
    else:
        print("no process matches")
    return EXIT_OK


def _records(client: VaultClient, args: argparse.Namespace) -> int:
    records = client.query_record_list(args.table, args.process)

    if args.json:
        _print_json(records)
        return EXIT_OK
    if not records:
        writer = f" from {args.process!r}" if args.process else ""
        print(f"no records in table {args.table!r}{writer}")
        return EXIT_OK
    if not all(isinstance(record, dict) for record in records):
        # Not all of them have fields to make columns of: one JSON document a line.
        print("\n".join(json.dumps(record, ensure_ascii=False) for record in records))
        return EXIT_OK
    columns = list(dict.fromkeys(key for record in records for key in record))
    rows = [[cell(record[key]) if key in record else "" for key in columns] for record in records]
    print("\n".join(text_table([column.upper() for column in columns], rows)))
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    # Imported only when asked for: the demo is not needed to run any other command.
    try:
        demo = importlib.import_module(f"{__package__}.demo")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.demo":
            raise
        raise TableVaultError("the demo is not part of this installation") from exc
    result = demo.main(list(args.demo_args))
    return result if isinstance(result, int) else EXIT_OK


# The parser ----------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more seconds, not {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text!r}")
    return value


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``tablevault``; each subcommand sets its ``handler`` and ``parser``."""
    parser = _Parser(
        prog="tablevault",
        description="See the processes registered with tablevault, and stop, pause or resume "
        "them at their next checkpoint.",
        epilog="Exit status: 0 done, 1 refused or failed (reason on stderr), 2 bad usage. "
        "The store is the one TABLEVAULT_HOME or TABLEVAULT_ARANGO_URL points at.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ps = commands.add_parser(
        "ps",
        help="list running processes",
        description="List processes, most recently started first.",
    )
    ps.add_argument("--all", action="store_true", help="include processes that have ended")
    _add_json(ps)
    ps.set_defaults(handler=_ps)

    show = commands.add_parser(
        "show",
        help="one process, its recent code and requests",
        description="Show the latest run of a process, its recent code items (with their "
        "status and errors) and its recent requests.",
    )
    show.add_argument("name", metavar="NAME", help="the process name")
    show.add_argument(
        "--limit",
        type=_count,
        default=_DEFAULT_LIMIT,
        metavar="N",
        help=f"show the last N code items and requests (default {_DEFAULT_LIMIT})",
    )
    _add_json(show)
    show.set_defaults(handler=_show)

    for action, what in (
        ("stop", "stop at its next checkpoint"),
        ("pause", "pause at its next checkpoint, until resumed or stopped"),
        ("resume", "go on after a pause (or withdraw a pause not yet reached)"),
    ):
        control = commands.add_parser(
            action,
            help=f"ask a process to {what}",
            description=f"Ask a process to {what}. Prints the request: its id and state.",
        )
        control.add_argument("name", metavar="NAME", help="the process name")
        _add_json(control)
        control.set_defaults(handler=_control)

    cleanup = commands.add_parser(
        "cleanup",
        help="finalise what dead processes left behind",
        description="Mark processes that died without saying so as crashed, their running "
        "code as lost and their open requests as expired.",
    )
    cleanup.add_argument(
        "--interval",
        type=_seconds,
        default=60.0,
        metavar="S",
        help="only what is older than S seconds (default 60; 0: everything)",
    )
    cleanup.add_argument(
        "--ids",
        type=int,
        nargs="+",
        metavar="ID",
        help="only the code items and requests with these ids "
        "(processes are then left as they are)",
    )
    _add_json(cleanup)
    cleanup.set_defaults(handler=_cleanup)

    search = commands.add_parser(
        "search",
        help="find processes by their code, parent or description",
        description="Print the names of processes matching every filter given "
        "(substrings, case-insensitive), most recent first.",
    )
    search.add_argument("--code", metavar="TEXT", help="text in the code it ran or its errors")
    search.add_argument(
        "--parent-code", metavar="TEXT", help="text in the code of the parent that started it"
    )
    search.add_argument("--description", metavar="TEXT", help="text in its description")
    search.add_argument(
        "--name", dest="names", nargs="+", metavar="NAME", help="keep only these process names"
    )
    _add_json(search)
    search.set_defaults(handler=_search)

    records = commands.add_parser(
        "records",
        help="the records appended to a table",
        description="Print the records processes appended to a table, in append order.",
    )
    records.add_argument("table", metavar="TABLE", help="the table name")
    records.add_argument("--process", metavar="NAME", help="only the records this process appended")
    _add_json(records)
    records.set_defaults(handler=_records)

    commands.add_parser(
        "demo", add_help=False, help="run the tablevault demo (the arguments are the demo's)"
    )
    for command in commands.choices.values():
        command.set_defaults(parser=command)
    return parser


# The entry point -----------------------------------------------------------------------------


def _open_client() -> VaultClient:
    settings = TableVaultSettings()
    try:
        # The settings come from TABLEVAULT_* variables, read when first used: read them now,
        # so that a malformed one is reported as such rather than as a traceback.
        for name in settings.trait_names(config=True):
            getattr(settings, name)
    except (ValueError, TraitError) as exc:
        raise InvalidInputError(f"a TABLEVAULT_* environment variable is invalid: {exc}") from exc
    return VaultClient(settings=settings, requester=f"{current_user()}@{host_name()} (cli)")


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args, extra = parser.parse_known_args(argv)
    if args.command == "demo":
        args.demo_args = extra
    elif extra:
        args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run one ``tablevault`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = _parse(parser, argv)
    except SystemExit as exit_:
        # --help, or a usage error already printed by the parser.
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE

    try:
        if args.command == "demo":
            return _demo(args)
        client = _open_client()
        try:
            return args.handler(client, args)
        finally:
            client.store.close()
    except TableVaultError as exc:
        print(f"tablevault: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`tablevault records steps | head`): stop writing, quietly, and
        # point stdout at nothing so that the interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
