"""One vault per process, and the errors that bad input gets."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tablevault import (
    InvalidInputError,
    ProcessNotFoundError,
    TableVaultError,
    Vault,
    VaultClient,
)

from .conftest import Worker, run_of, script_item, unique_name

Spawn = Callable[..., Worker]

TWO_VAULTS = """
    import tablevault
    from worker_kit import NAME, mark, wait_for_marker

    first = tablevault.Vault(user_id="tester", process_name=NAME)
    again = tablevault.Vault()
    mark("same_object", again is first)
    mark("ready")
    wait_for_marker("rename")
    renamed = tablevault.Vault(process_name=NAME + "-b")
    mark("renamed", renamed is first)
    wait_for_marker("go")
"""


def test_a_second_vault_in_a_process_is_the_first(client: VaultClient, spawn: Spawn) -> None:
    # Given a script that created a vault
    # When it calls Vault() again
    worker = spawn(TWO_VAULTS)

    # Then it gets the same object, and the process is registered once
    assert worker.wait_marker("same_object") == "True"
    assert [run.pid for run in client.list_processes()] == [worker.pid]


def test_a_vault_under_another_name_renames_the_registration(
    client: VaultClient, spawn: Spawn
) -> None:
    # Given a script registered as NAME, with its source recorded
    worker = spawn(TWO_VAULTS)
    worker.wait_marker("ready")
    first = run_of(client, worker)

    # When it creates a vault named NAME-b
    worker.mark("rename")
    assert worker.wait_marker("renamed") == "True"

    # Then the same run now holds the new name, with the code it had already recorded
    renamed = client.get_process(worker.name + "-b")
    assert renamed.run_id == first.run_id
    assert script_item(client, renamed).source == worker.script.read_text()
    with pytest.raises(ProcessNotFoundError):
        client.get_process(worker.name)


# Bad input --------------------------------------------------------------------------------------


@pytest.fixture
def vault(client: VaultClient) -> Iterator[Vault]:
    """A vault registering this test process, closed (and its hooks removed) afterwards."""
    own = Vault(user_id="tester", process_name=unique_name("tests"))
    yield own

    own.close()


TABLE = "measurements"


def deeply_nested(depth: int = 100_000) -> list[Any]:
    record: list[Any] = []
    for _ in range(depth):
        record = [record]
    return record


BAD_INPUT: list[tuple[str, Callable[[Vault, VaultClient], Any], type[TableVaultError], str]] = [
    (
        "empty process name",
        lambda v, c: c.stop_execution(""),
        InvalidInputError,
        "process name must not be empty",
    ),
    (
        "blank process name",
        lambda v, c: c.get_process("   "),
        InvalidInputError,
        "process name must not be empty",
    ),
    (
        "non-string process name",
        lambda v, c: c.pause_execution(42),
        InvalidInputError,
        "process name must be a string, not int",
    ),
    (
        "non-string vault name",
        lambda v, c: Vault(process_name=["a"]),
        InvalidInputError,
        "process name must be a string, not list",
    ),
    (
        "empty table name",
        lambda v, c: v.append_record("", {"a": 1}),
        InvalidInputError,
        "table name must not be empty",
    ),
    (
        "set in a record",
        lambda v, c: v.append_record(TABLE, {"tags": {"a", "b"}}),
        InvalidInputError,
        f"the record for table {TABLE!r} is not JSON-serialisable",
    ),
    (
        "NaN in a record",
        lambda v, c: v.append_record(TABLE, {"loss": math.nan}),
        InvalidInputError,
        "Out of range float values are not JSON compliant",
    ),
    (
        "negative cleanup interval",
        lambda v, c: c.vault_cleanup(interval=-5),
        InvalidInputError,
        "interval must be zero or more seconds, not -5",
    ),
    (
        "text cleanup interval",
        lambda v, c: c.vault_cleanup(interval="soon"),
        InvalidInputError,
        "interval must be a number of seconds, not 'soon'",
    ),
    (
        "non-integer selected ids",
        lambda v, c: c.vault_cleanup(selected_timestamps=["1"]),
        InvalidInputError,
        "selected_timestamps must be a list of integer ids",
    ),
    (
        "a single id for selected ids",
        lambda v, c: c.vault_cleanup(selected_timestamps=5),
        InvalidInputError,
        "selected_timestamps must be a list of integer ids, not int",
    ),
    (
        "an iterator of selected ids",
        lambda v, c: c.vault_cleanup(selected_timestamps=iter([1])),
        InvalidInputError,
        "selected_timestamps must be a list of integer ids, not list_iterator",
    ),
    (
        "an id too large to store",
        lambda v, c: c.vault_cleanup(selected_timestamps=[10**20]),
        InvalidInputError,
        "100000000000000000000 is not one",
    ),
    (
        "an interval too large",
        lambda v, c: c.vault_cleanup(interval=10**400),
        InvalidInputError,
        "interval is too large",
    ),
    (
        "a lone surrogate in a name",
        lambda v, c: c.get_process("bad\ud800"),
        InvalidInputError,
        "process name is not valid text",
    ),
    (
        "a lone surrogate in a record",
        lambda v, c: v.append_record(TABLE, {"a": "\ud800"}),
        InvalidInputError,
        f"the record for table {TABLE!r} is not valid text",
    ),
    (
        "a record nested too deeply",
        lambda v, c: v.append_record(TABLE, deeply_nested()),
        InvalidInputError,
        "is nested too deeply to store",
    ),
    (
        "a record with a non-string key",
        lambda v, c: v.append_record(TABLE, {1: 2}),
        InvalidInputError,
        "has a key 1 of type int; keys must be strings",
    ),
    (
        "a NUL in a search text",
        lambda v, c: c.query_process_list(code_text="zz\x00"),
        InvalidInputError,
        "code_text contains a NUL character",
    ),
    (
        "unknown process to stop",
        lambda v, c: c.stop_execution("nobody-here"),
        ProcessNotFoundError,
        "no process named 'nobody-here' is registered",
    ),
    (
        "unknown process to look up",
        lambda v, c: c.get_process("nobody-here"),
        ProcessNotFoundError,
        "no process named 'nobody-here' is registered",
    ),
    (
        "unknown process's code",
        lambda v, c: c.query_process_code("nobody-here"),
        ProcessNotFoundError,
        "no process named 'nobody-here' is registered",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [pytest.param(call, error, message, id=case) for case, call, error, message in BAD_INPUT],
)
def test_bad_input_raises_a_clear_error_and_leaves_the_store_intact(
    vault: Vault,
    client: VaultClient,
    call: Callable[[Vault, VaultClient], Any],
    error: type[TableVaultError],
    message: str,
) -> None:
    # Given a registered process that has appended a record
    vault.append_record(TABLE, {"step": 1})

    # When a call gets bad input
    with pytest.raises(error) as refused:
        call(vault, client)

    # Then the error names what was wrong, and what was stored before is still there
    assert message in str(refused.value)
    assert client.query_record_list(TABLE) == [{"step": 1}]
    assert client.get_process(vault.process_name).status == "running"
