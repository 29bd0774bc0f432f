"""Text for people: times, durations, one-line excerpts, aligned tables, and the process
table that ``tablevault ps`` and ``%tv_ps`` both print.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from typing import Any

from .client import VaultClient
from .store import ProcessRecord, Request

SOURCE_WIDTH = 60
NOTHING = "-"


def ago(timestamp: float | None, at: float) -> str:
    """``3m ago``: how long before ``at`` the timestamp was, in its largest whole unit."""
    if timestamp is None:
        return NOTHING
    seconds = at - timestamp
    if seconds < 1:
        return "just now"
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def clock(timestamp: float | None) -> str:
    if timestamp is None:
        return NOTHING
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NOTHING
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


def one_line(text: str, width: int = SOURCE_WIDTH) -> str:
    """The first non-blank line of ``text``, made printable and cut to ``width``."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    line = "".join(char if char.isprintable() else " " for char in line)
    return line if len(line) <= width else line[: width - 3] + "..."


def cell(value: Any) -> str:
    """A record value as a table cell: strings as they are, anything else as compact JSON."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return one_line(text, width=SOURCE_WIDTH)


def text_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[int] = ()
) -> list[str]:
    """Aligned lines, header first; the columns numbered in ``right`` are right-aligned."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return [line(headers), *(line(row) for row in rows)]


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def status_text(run: ProcessRecord, alive: bool, requests: list[Request]) -> str:
    """``running (pause requested)``: the stored status and what is about to change it."""
    if run.live and not alive:
        return f"{run.status} (process gone)"
    wanted = ", ".join(f"{request.action} requested" for request in requests)
    return f"{run.status} ({wanted})" if wanted else run.status


def open_requests(client: VaultClient, run: ProcessRecord) -> list[Request]:
    return client.store.open_requests(run.run_id) if run.live else []


PROCESS_COLUMNS = (
    "NAME",
    "KIND",
    "STATUS",
    "USER",
    "HOST",
    "PID",
    "STARTED",
    "LAST CHECKPOINT",
    "CHECKPOINTS",
)


def process_table(
    client: VaultClient, runs: Sequence[ProcessRecord], *, marked_run_id: str | None = None
) -> str:
    """The runs as an aligned table; the row of ``marked_run_id`` starts with ``*``."""
    at = time.time()
    rows = []
    for run in runs:
        status = status_text(run, client.is_alive(run), open_requests(client, run))
        name = (
            run.name
            if marked_run_id is None
            else (("* " if run.run_id == marked_run_id else "  ") + run.name)
        )
        rows.append(
            (
                name,
                run.kind,
                status,
                run.user_id,
                run.host,
                str(run.pid),
                ago(run.started_at, at),
                ago(run.last_checkpoint_at, at),
                str(run.checkpoint_count),
            )
        )
    headers = (
        PROCESS_COLUMNS
        if marked_run_id is None
        else ("  " + PROCESS_COLUMNS[0], *PROCESS_COLUMNS[1:])
    )
    numbers = {PROCESS_COLUMNS.index("PID"), PROCESS_COLUMNS.index("CHECKPOINTS")}
    return "\n".join(text_table(headers, rows, right=numbers))
