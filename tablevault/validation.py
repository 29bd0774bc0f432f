"""Checks on what callers hand to tablevault, each failing with an InvalidInputError that names
the argument. Everything stored passes through here first, so nothing that the stores could
reject halfway (text SQLite cannot encode, numbers it cannot hold) reaches them.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import InvalidInputError

MAX_NAME_LENGTH = 512
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# Ids are stored as SQLite INTEGERs and ArangoDB keys: signed 64-bit.
_MAX_ID = 2**63 - 1


def _encodable(value: str, what: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} is not valid text: {exc.reason}") from None
    return value


def check_name(value: object, what: str = "process name") -> str:
    """Return ``value`` if it is an acceptable name, else raise InvalidInputError."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError(f"{what} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInputError(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    if _CONTROL_CHARACTERS.search(value):
        raise InvalidInputError(f"{what} {value!r} contains control characters")
    return _encodable(value, what)


def check_text(value: object, what: str) -> str | None:
    """A free text (a description, a search): any string but one with a NUL character."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise InvalidInputError(f"{what} contains a NUL character")
    return _encodable(value, what)


def check_interval(value: object, what: str = "interval") -> float:
    """A finite number of seconds, zero or more."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{what} must be a number of seconds, not {value!r}")
    try:
        seconds = float(value)
    except OverflowError:
        raise InvalidInputError(f"{what} is too large to be a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidInputError(f"{what} must be zero or more seconds, not {value!r}")
    return seconds


def check_ids(values: object, what: str = "selected_timestamps") -> list[int]:
    """A list, tuple or set of integer ids (an iterator would be used up by the check)."""
    if not isinstance(values, list | tuple | set | frozenset):
        raise InvalidInputError(
            f"{what} must be a list of integer ids, not {type(values).__name__}"
        )
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ID:
            raise InvalidInputError(f"{what} must be a list of integer ids; {value!r} is not one")
    return list(values)


def _check_keys(record: object, table: str) -> None:
    """Refuse dict keys that JSON would turn into strings: the record would come back changed.

    Walks the record with a stack of its own, so that depth alone cannot overflow Python's.
    """
    pending: list[object] = [record]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if not isinstance(key, str):
                    raise InvalidInputError(
                        f"the record for table {table!r} has a key {key!r} of type "
                        f"{type(key).__name__}; keys must be strings"
                    )
                pending.append(value)
        elif isinstance(item, list | tuple):
            pending.extend(item)


def to_json(table: str, record: Any) -> str:
    """Serialise a record strictly: what JSON cannot hold as it is is refused, not altered."""
    _check_keys(record, table)
    try:
        text = json.dumps(record, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"the record for table {table!r} is not JSON-serialisable: {exc}"
        ) from exc
    except RecursionError:
        raise InvalidInputError(
            f"the record for table {table!r} is nested too deeply to store"
        ) from None
    return _encodable(text, f"the record for table {table!r}")
