"""What every Store promises, checked against each backend (see conftest.py)."""

from __future__ import annotations

import multiprocessing
import queue
import traceback
import uuid
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from tablevault.errors import (
    InvalidInputError,
    NameTakenError,
    ProcessNotFoundError,
    ProcessStateError,
)
from tablevault.identity import ProcessIdentity
from tablevault.store import Store
from tablevault.store.records import Outcome, ProcessRecord, now
from tablevault.store.sqlite import SQLiteStore

from .conftest import unique_name

AddRun = Callable[..., ProcessRecord]

# A run on a host we cannot look at is judged by its heartbeat alone.
ELSEWHERE = "elsewhere.invalid"


# Runs ------------------------------------------------------------------------------------------


def test_register_run_is_found_by_name_and_by_id(store: Store, new_run: AddRun) -> None:
    # Given a run of this process
    run = new_run()

    # When it is registered
    store.register_run(run)

    # Then it can be looked up either way, live and running
    assert store.get_run(name=run.name) == run
    found = store.get_run(run_id=run.run_id)
    assert found is not None
    assert found.live
    assert found.status == "running"


def test_register_refuses_a_name_held_by_a_live_run(
    store: Store, add_run: AddRun, new_run: AddRun
) -> None:
    # Given a live run holding a name
    holder = add_run()

    # When another run asks for that name
    with pytest.raises(NameTakenError) as caught:
        store.register_run(new_run(holder.name))

    # Then the error names the holder's pid and host
    assert caught.value.pid == holder.pid
    assert caught.value.host == holder.host
    assert str(holder.pid) in str(caught.value)
    assert holder.host in str(caught.value)


def test_register_over_a_dead_holder_crashes_it_and_keeps_its_history(
    store: Store, add_run: AddRun, new_run: AddRun
) -> None:
    # Given a name held by a run whose process has died, with code recorded
    old = add_run(dead=True)
    store.start_code_item(old.run_id, "script", "print('old')")

    # When a new run registers under that name
    new = store.register_run(new_run(old.name))

    # Then the name is the new run's, and the old run is kept, ended as crashed
    assert store.get_run(name=old.name) == new
    kept = store.get_run(run_id=old.run_id)
    assert kept is not None
    assert kept.status == "crashed"
    assert kept.ended_at is not None
    assert [item.source for item in store.code_items(old.run_id)] == ["print('old')"]


def test_rename_keeps_code_items_and_moves_requests(store: Store, add_run: AddRun) -> None:
    # Given a run with code and an open request
    run = add_run()
    store.start_code_item(run.run_id, "cell", "x = 1")
    request = store.create_request(run.name, "pause", "tester")
    new_name = unique_name("renamed")

    # When it is renamed
    renamed = store.rename_run(run.run_id, new_name, description="second try")

    # Then it answers to the new name with its code, and its requests follow it
    assert renamed.name == new_name
    assert renamed.description == "second try"
    assert store.get_run(name=new_name) == renamed
    assert [item.source for item in store.code_items(run.run_id)] == ["x = 1"]
    assert [(r.id, r.target_name) for r in store.open_requests(run.run_id)] == [
        (request.id, new_name)
    ]


def test_rename_to_a_name_held_by_a_live_run_raises(store: Store, add_run: AddRun) -> None:
    # Given two live runs
    first, second = add_run(), add_run()

    # When the second asks for the first one's name
    with pytest.raises(NameTakenError):
        store.rename_run(second.run_id, first.name)

    # Then both keep their names
    assert store.get_run(name=second.name) == second


def test_heartbeat_records_checkpoint_progress(store: Store, add_run: AddRun) -> None:
    # Given a run
    run = add_run()
    at = now()

    # When it sends a heartbeat after three checkpoints
    store.heartbeat(run.run_id, 3, at)

    # Then the run carries the progress and the time of the heartbeat
    found = store.get_run(run_id=run.run_id)
    assert found is not None
    assert found.checkpoint_count == 3
    assert found.last_checkpoint_at == pytest.approx(at)
    assert found.heartbeat_at is not None


def test_set_run_status_marks_a_live_run(store: Store, add_run: AddRun) -> None:
    # Given a running process
    run = add_run()

    # When it marks itself paused
    store.set_run_status(run.run_id, "paused")

    # Then the run is paused and still live
    found = store.get_run(run_id=run.run_id)
    assert found is not None
    assert (found.status, found.live) == ("paused", True)


def test_set_run_status_leaves_an_ended_run_as_it_is(store: Store, add_run: AddRun) -> None:
    # Given a process that has finished
    run = add_run()
    store.end_run(run.run_id, "finished")

    # When something marks it running again
    store.set_run_status(run.run_id, "running")

    # Then it stays finished
    found = store.get_run(run_id=run.run_id)
    assert found is not None
    assert found.status == "finished"


def test_end_run_expires_open_requests(store: Store, add_run: AddRun) -> None:
    # Given a run with a pending stop
    run = add_run()
    request = store.create_request(run.name, "stop", "tester")

    # When the run ends
    store.end_run(run.run_id, "finished", exit_status=0)

    # Then it is ended and the request expired
    ended = store.get_run(run_id=run.run_id)
    assert ended is not None
    assert (ended.status, ended.exit_status, ended.live) == ("finished", 0, False)
    assert store.open_requests(run.run_id) == []
    assert [(r.id, r.state) for r in store.recent_requests(run.run_id)] == [(request.id, "expired")]


def test_end_run_leaves_an_ended_run_as_it_is(store: Store, add_run: AddRun) -> None:
    # Given a run that has finished
    run = add_run()
    store.end_run(run.run_id, "finished", exit_status=0)
    first = store.get_run(run_id=run.run_id)

    # When it is ended again with another status
    store.end_run(run.run_id, "crashed")

    # Then nothing changes
    assert store.get_run(run_id=run.run_id) == first


def test_list_runs_live_only_leaves_out_ended_runs(store: Store, add_run: AddRun) -> None:
    # Given one ended run and two live ones, started in that order
    ended = add_run(started_at=now() - 30)
    older = add_run(started_at=now() - 20)
    newer = add_run(started_at=now() - 10)
    store.end_run(ended.run_id, "finished")

    # When runs are listed
    live = store.list_runs(live_only=True)
    every = store.list_runs(live_only=False)

    # Then live_only keeps the live ones, and both lists put the latest start first
    assert [run.run_id for run in live] == [newer.run_id, older.run_id]
    assert [run.run_id for run in every] == [newer.run_id, older.run_id, ended.run_id]


# Code ------------------------------------------------------------------------------------------


def test_code_items_are_numbered_from_zero_in_each_run(store: Store, add_run: AddRun) -> None:
    # Given two runs
    first, second = add_run(), add_run()

    # When their code items start interleaved
    indexes = [
        store.start_code_item(run.run_id, "cell", f"step {n}").index
        for n, run in enumerate([first, second, first, first, second])
    ]

    # Then each run counts its own items
    assert indexes == [0, 0, 1, 2, 1]
    assert store.code_item_count(first.run_id) == 3
    assert store.code_item_count(second.run_id) == 2


def test_code_item_ids_are_increasing_microsecond_timestamps(store: Store, add_run: AddRun) -> None:
    # Given a run
    run = add_run()
    before = int(now() * 1_000_000)

    # When many items start in quick succession
    ids = [store.start_code_item(run.run_id, "cell", f"x = {n}").id for n in range(20)]

    # Then every id is larger than the one before and close to the time it was taken
    assert all(isinstance(item_id, int) for item_id in ids)
    assert ids == sorted(set(ids))
    assert before <= ids[0] <= int(now() * 1_000_000)


def test_finish_code_item_records_the_error(store: Store, add_run: AddRun) -> None:
    # Given a running code item
    run = add_run()
    item = store.start_code_item(run.run_id, "cell", "1 / 0", execution_count=4, cell_id="c1")

    # When it ends with an exception
    store.finish_code_item(
        item.id,
        Outcome(
            status="error",
            duration=0.5,
            error_type="ZeroDivisionError",
            error_message="division by zero",
            traceback="Traceback ...",
        ),
    )

    # Then the item carries the outcome
    [found] = store.code_items(run.run_id)
    assert (found.id, found.status, found.duration) == (item.id, "error", 0.5)
    assert (found.error_type, found.error_message) == ("ZeroDivisionError", "division by zero")
    assert found.traceback == "Traceback ..."
    assert (found.execution_count, found.cell_id) == (4, "c1")


def test_thread_errors_come_back_with_their_code_item(store: Store, add_run: AddRun) -> None:
    # Given a running code item
    run = add_run()
    item = store.start_code_item(run.run_id, "script", "start_workers()")

    # When two of its threads die with exceptions
    store.add_thread_error(item.id, "worker-1", "KeyError", "'a'", "Traceback 1")
    store.add_thread_error(item.id, "worker-2", "OSError", "disk full", "Traceback 2")

    # Then the item lists them in the order they happened
    [found] = store.code_items(run.run_id)
    assert [
        (e["thread_name"], e["error_type"], e["error_message"], e["traceback"])
        for e in found.thread_errors
    ] == [
        ("worker-1", "KeyError", "'a'", "Traceback 1"),
        ("worker-2", "OSError", "disk full", "Traceback 2"),
    ]


def test_code_items_come_newest_first_and_honour_the_limit(store: Store, add_run: AddRun) -> None:
    # Given a run with five code items
    run = add_run()
    for n in range(5):
        store.start_code_item(run.run_id, "cell", f"step {n}")

    # When they are read, all and then the last two
    every = store.code_items(run.run_id)
    last_two = store.code_items(run.run_id, limit=2)

    # Then the newest comes first
    assert [item.index for item in every] == [4, 3, 2, 1, 0]
    assert [item.source for item in last_two] == ["step 4", "step 3"]


# Requests --------------------------------------------------------------------------------------


def test_pause_is_pending_for_a_running_process(store: Store, add_run: AddRun) -> None:
    # Given a running process
    run = add_run()

    # When it is asked to pause
    request = store.create_request(run.name, "pause", "tester")

    # Then the request waits for it, addressed to this run
    assert (request.action, request.state, request.run_id) == ("pause", "pending", run.run_id)
    assert isinstance(request.id, int)
    assert store.open_requests(run.run_id) == [request]


def test_a_second_pause_returns_the_first_request(store: Store, add_run: AddRun) -> None:
    # Given a process with a pending pause
    run = add_run()
    first = store.create_request(run.name, "pause", "tester")

    # When it is asked to pause again
    second = store.create_request(run.name, "pause", "someone else")

    # Then the answer is the same request, and only one is open
    assert second == first
    assert len(store.open_requests(run.run_id)) == 1


def test_resume_of_a_running_process_raises(store: Store, add_run: AddRun) -> None:
    # Given a running process with nothing pending
    run = add_run()

    # When it is asked to resume, then the request is refused
    with pytest.raises(ProcessStateError):
        store.create_request(run.name, "resume", "tester")
    assert store.recent_requests(run.run_id) == []


def test_resume_while_a_pause_is_pending_cancels_the_pause(store: Store, add_run: AddRun) -> None:
    # Given a running process whose pause has not reached a checkpoint yet
    run = add_run()
    pause = store.create_request(run.name, "pause", "tester")

    # When it is asked to resume
    resume = store.create_request(run.name, "resume", "tester")

    # Then the pause is cancelled and the resume is already done
    assert resume.state == "done"
    states = {r.id: r.state for r in store.recent_requests(run.run_id)}
    assert states == {pause.id: "cancelled", resume.id: "done"}
    assert store.open_requests(run.run_id) == []


def test_pause_of_a_paused_process_raises(store: Store, add_run: AddRun) -> None:
    # Given a process that has paused
    run = add_run()
    pause = store.create_request(run.name, "pause", "tester")
    store.complete_request(pause.id, run_status="paused")

    # When it is asked to pause again, then the request is refused
    with pytest.raises(ProcessStateError):
        store.create_request(run.name, "pause", "tester")


def test_resume_of_a_paused_process_is_pending(store: Store, add_run: AddRun) -> None:
    # Given a process that has paused
    run = add_run()
    pause = store.create_request(run.name, "pause", "tester")
    store.complete_request(pause.id, run_status="paused")

    # When it is asked to resume
    resume = store.create_request(run.name, "resume", "tester")

    # Then the resume waits for the process
    assert resume.state == "pending"


def test_stop_of_a_paused_process_is_pending(store: Store, add_run: AddRun) -> None:
    # Given a process that has paused
    run = add_run()
    pause = store.create_request(run.name, "pause", "tester")
    store.complete_request(pause.id, run_status="paused")

    # When it is asked to stop
    stop = store.create_request(run.name, "stop", "tester")

    # Then the stop waits for the process
    assert (stop.action, stop.state) == ("stop", "pending")


def test_a_second_stop_returns_the_first_request(store: Store, add_run: AddRun) -> None:
    # Given a process with a pending stop
    run = add_run()
    first = store.create_request(run.name, "stop", "tester")

    # When it is asked to stop again, then the first request is the answer
    assert store.create_request(run.name, "stop", "tester") == first


def test_request_to_an_ended_process_raises(store: Store, add_run: AddRun) -> None:
    # Given a process that has finished
    run = add_run()
    store.end_run(run.run_id, "finished")

    # When it is asked to stop, then the request is refused
    with pytest.raises(ProcessStateError):
        store.create_request(run.name, "stop", "tester")


def test_request_to_an_unknown_name_raises(store: Store) -> None:
    # Given a name nobody ever registered
    name = unique_name("nobody")

    # When it is asked to stop, then it is not found
    with pytest.raises(ProcessNotFoundError):
        store.create_request(name, "stop", "tester")


def test_request_for_another_run_of_the_name_raises(store: Store, add_run: AddRun) -> None:
    # Given a name now held by a run other than the one the requester saw
    run = add_run()

    # When the requester names the run it saw
    with pytest.raises(ProcessStateError):
        store.create_request(run.name, "stop", "tester", run_id=uuid.uuid4().hex)

    # Then nothing was requested
    assert store.recent_requests(run.run_id) == []


def test_request_to_a_dead_process_crashes_it_and_raises(store: Store, add_run: AddRun) -> None:
    # Given a run registered live whose process has died
    run = add_run(dead=True)

    # When it is asked to stop
    with pytest.raises(ProcessStateError):
        store.create_request(run.name, "stop", "tester")

    # Then the run is finalised as crashed
    found = store.get_run(run_id=run.run_id)
    assert found is not None
    assert (found.status, found.live) == ("crashed", False)


def test_unknown_action_raises(store: Store, add_run: AddRun) -> None:
    # Given a running process
    run = add_run()

    # When it is asked for an action that does not exist, then the input is refused
    with pytest.raises(InvalidInputError):
        store.create_request(run.name, "explode", "tester")


def test_complete_request_sets_the_run_status(store: Store, add_run: AddRun) -> None:
    # Given a pending pause
    run = add_run()
    pause = store.create_request(run.name, "pause", "tester")

    # When the process reaches a checkpoint and completes it as paused
    completed = store.complete_request(pause.id, run_status="paused")

    # Then the request is done and the run paused
    assert completed is True
    found = store.get_run(run_id=run.run_id)
    assert found is not None
    assert found.status == "paused"
    assert [(r.id, r.state) for r in store.recent_requests(run.run_id)] == [(pause.id, "done")]


def test_complete_request_of_a_cancelled_request_changes_nothing(
    store: Store, add_run: AddRun
) -> None:
    # Given a pause that a resume has cancelled
    run = add_run()
    pause = store.create_request(run.name, "pause", "tester")
    store.create_request(run.name, "resume", "tester")

    # When the process tries to complete the pause
    completed = store.complete_request(pause.id, run_status="paused")

    # Then it is told no, and the run keeps running
    assert completed is False
    found = store.get_run(run_id=run.run_id)
    assert found is not None
    assert found.status == "running"


def test_acknowledged_requests_stay_open(store: Store, add_run: AddRun) -> None:
    # Given a pending stop
    run = add_run()
    stop = store.create_request(run.name, "stop", "tester")

    # When the target acknowledges it
    store.acknowledge_requests([stop.id])

    # Then it is acknowledged and still open
    [found] = store.open_requests(run.run_id)
    assert (found.id, found.state) == (stop.id, "acknowledged")


def test_recent_requests_come_newest_first(store: Store, add_run: AddRun) -> None:
    # Given a pause that was completed, then a stop
    run = add_run()
    pause = store.create_request(run.name, "pause", "tester")
    store.complete_request(pause.id, run_status="paused")
    stop = store.create_request(run.name, "stop", "tester")

    # When the recent requests are read, then the stop comes first
    assert [r.id for r in store.recent_requests(run.run_id)] == [stop.id, pause.id]
    assert [r.id for r in store.recent_requests(run.run_id, limit=1)] == [stop.id]


# Records ---------------------------------------------------------------------------------------


def test_records_come_back_in_append_order(store: Store, add_run: AddRun) -> None:
    # Given two runs
    first, second = add_run(), add_run()

    # When they append to one table in turn
    ids = [
        store.append_record(run.run_id, "metrics", f'{{"step": {n}}}')
        for n, run in enumerate([first, second, first])
    ]

    # Then the table returns the documents in the order they were appended, with growing ids
    assert store.query_records("metrics") == [{"step": 0}, {"step": 1}, {"step": 2}]
    assert ids == sorted(set(ids))


def test_records_can_be_read_for_one_process(store: Store, add_run: AddRun) -> None:
    # Given two runs that appended to one table, and another table
    first, second = add_run(), add_run()
    store.append_record(first.run_id, "metrics", '{"loss": 0.5}')
    store.append_record(second.run_id, "metrics", '{"loss": 0.9}')
    store.append_record(first.run_id, "events", '{"event": "start"}')

    # When the table is read for the first process only
    found = store.query_records("metrics", process_name=first.name)

    # Then only its rows of that table come back
    assert found == [{"loss": 0.5}]


def test_append_to_an_unknown_run_raises(store: Store) -> None:
    # Given a run id nobody registered
    run_id = uuid.uuid4().hex

    # When a record is appended for it, then the run is not found
    with pytest.raises(ProcessNotFoundError):
        store.append_record(run_id, "metrics", "{}")
    assert store.query_records("metrics") == []


# Search ----------------------------------------------------------------------------------------


@pytest.fixture
def trainer(store: Store, add_run: AddRun) -> ProcessRecord:
    """A run that loaded data, then trained a model and failed."""
    run = add_run(unique_name("trainer"), description="Nightly ResNet training")
    store.start_code_item(run.run_id, "cell", "data = load_data()")
    item = store.start_code_item(run.run_id, "cell", "model.fit(data, epochs=3)")
    store.finish_code_item(
        item.id,
        Outcome(
            status="error",
            error_type="MemoryError",
            error_message="out of GPU memory",
        ),
    )
    return run


@pytest.fixture
def bystander(store: Store, add_run: AddRun) -> ProcessRecord:
    """A run whose code and description match none of the searches below."""
    run = add_run(unique_name("bystander"), description="cleans the cache")
    store.start_code_item(run.run_id, "script", "import shutil\nshutil.rmtree(cache)")
    return run


def test_search_by_code_text_matches_a_substring(
    store: Store, trainer: ProcessRecord, bystander: ProcessRecord
) -> None:
    # When processes are searched for code containing "model.fit"
    found = store.search_processes(code_text="model.fit")

    # Then only the trainer matches
    assert found == [trainer.name]


def test_search_by_code_text_ignores_case(
    store: Store, trainer: ProcessRecord, bystander: ProcessRecord
) -> None:
    # When the search text is in another case, then it still matches
    assert store.search_processes(code_text="MODEL.FIT") == [trainer.name]


def test_search_by_code_text_of_two_characters(
    store: Store, trainer: ProcessRecord, bystander: ProcessRecord
) -> None:
    # When processes are searched for a two-character text only the bystander's code has
    found = store.search_processes(code_text="sh")

    # Then it matches, although it is shorter than any trigram
    assert found == [bystander.name]


def test_search_by_code_text_matches_error_types(
    store: Store, trainer: ProcessRecord, bystander: ProcessRecord
) -> None:
    # When processes are searched for the error a cell raised
    found = store.search_processes(code_text="MemoryError")

    # Then the run whose code raised it matches
    assert found == [trainer.name]


def test_search_by_code_text_matches_thread_errors(
    store: Store, add_run: AddRun, bystander: ProcessRecord
) -> None:
    # Given a run one of whose threads died
    run = add_run()
    item = store.start_code_item(run.run_id, "script", "start_workers()")
    store.add_thread_error(item.id, "worker-1", "BrokenPipeError", "pipe closed", "Traceback")

    # When processes are searched for that error
    found = store.search_processes(code_text="BrokenPipe")

    # Then the run matches
    assert found == [run.name]


def test_search_by_parent_code_text_follows_the_parent_index(
    store: Store, add_run: AddRun, trainer: ProcessRecord
) -> None:
    # Given one child started by the trainer's training cell, another by its loading cell
    from_fit = add_run(parent_name=trainer.name, parent_run_id=trainer.run_id, parent_index=1)
    add_run(parent_name=trainer.name, parent_run_id=trainer.run_id, parent_index=0)

    # When processes are searched by their parent's code
    found = store.search_processes(parent_code_text="model.fit")

    # Then only the child of the matching cell is found
    assert found == [from_fit.name]


def test_search_by_parent_code_text_without_index_matches_any_parent_code(
    store: Store, add_run: AddRun, trainer: ProcessRecord
) -> None:
    # Given a child whose parent cell is unknown
    child = add_run(parent_name=trainer.name, parent_run_id=trainer.run_id)

    # When processes are searched by any of the parent's code
    found = store.search_processes(parent_code_text="load_data")

    # Then the child matches
    assert found == [child.name]


def test_search_by_description_text(
    store: Store, trainer: ProcessRecord, bystander: ProcessRecord
) -> None:
    # When processes are searched by a word of a description, in another case
    found = store.search_processes(description_text="resnet")

    # Then the described run matches
    assert found == [trainer.name]


def test_search_keeps_only_the_given_names(
    store: Store, trainer: ProcessRecord, bystander: ProcessRecord
) -> None:
    # When the search is limited to names, then only those come back (none for an empty list)
    assert store.search_processes(names=[bystander.name]) == [bystander.name]
    assert store.search_processes(names=[]) == []


def test_search_filters_combine(
    store: Store, add_run: AddRun, trainer: ProcessRecord, bystander: ProcessRecord
) -> None:
    # Given a second run whose code also calls model.fit
    other = add_run()
    store.start_code_item(other.run_id, "cell", "model.fit(x)")

    # When the search names code text, a description and names together
    both = store.search_processes(code_text="model.fit", names=[trainer.name, bystander.name])
    described = store.search_processes(code_text="model.fit", description_text="nightly")

    # Then a process must match every filter
    assert both == [trainer.name]
    assert described == [trainer.name]


def test_search_puts_the_latest_started_first(store: Store, add_run: AddRun) -> None:
    # Given two runs with the same code, started one after the other
    older = add_run(started_at=now() - 60)
    newer = add_run(started_at=now() - 30)
    for run in (older, newer):
        store.start_code_item(run.run_id, "cell", "train()")

    # When processes are searched, then the latest one comes first
    assert store.search_processes(code_text="train()") == [newer.name, older.name]


# Current operations and cleanup ----------------------------------------------------------------


def test_current_operations_shows_running_code_and_open_requests(
    store: Store, add_run: AddRun
) -> None:
    # Given a run in the middle of a cell, with a pending pause, and an idle run
    busy, idle = add_run(), add_run()
    store.finish_code_item(
        store.start_code_item(busy.run_id, "cell", "setup()").id, Outcome(status="ok")
    )
    item = store.start_code_item(busy.run_id, "cell", "train()")
    pause = store.create_request(busy.name, "pause", "tester")

    # When the current operations are read
    operations = store.current_operations()

    # Then the busy run shows its running cell and the request, both with integer ids
    by_name = {process["name"]: process for process in operations["processes"]}
    assert by_name[busy.name]["id"] == item.id
    assert isinstance(by_name[busy.name]["id"], int)
    assert by_name[busy.name]["current_item"]["source"] == "train()"
    assert by_name[idle.name]["current_item"] is None
    [request] = operations["requests"]
    assert (request["id"], request["action"], request["target_name"]) == (
        pause.id,
        "pause",
        busy.name,
    )
    assert isinstance(request["id"], int)


def test_cleanup_finalises_what_a_silent_run_left(
    backend: Callable[..., Store], new_run: AddRun
) -> None:
    # Given a run on another host, silent for ten minutes, with a running cell and a pending
    # stop, written by a client that waits an hour before taking such a run for dead
    patient = backend(stale_after=3600)
    run = patient.register_run(
        new_run(
            host=ELSEWHERE,
            started_at=now() - 1200,
            heartbeat_at=now() - 600,
        )
    )
    item = patient.start_code_item(run.run_id, "cell", "train()", started_at=now() - 900)
    stop = patient.create_request(run.name, "stop", "tester")

    # When a client that waits thirty seconds cleans up, whatever the age of things
    counts = backend(stale_after=30).cleanup(0)

    # Then the run crashed, its cell is lost and its request expired
    assert counts == {"crashed_runs": 1, "lost_items": 1, "expired_requests": 1}
    found = patient.get_run(run_id=run.run_id)
    assert found is not None
    assert found.status == "crashed"
    assert [(i.id, i.status) for i in patient.code_items(run.run_id)] == [(item.id, "lost")]
    assert [(r.id, r.state) for r in patient.recent_requests(run.run_id)] == [(stop.id, "expired")]


def test_cleanup_leaves_a_run_that_died_within_the_interval(store: Store, add_run: AddRun) -> None:
    # Given a run that started a moment ago and whose process is already gone
    run = add_run(dead=True)
    store.start_code_item(run.run_id, "cell", "x = 1")

    # When what is older than a minute is cleaned up
    counts = store.cleanup(60)

    # Then the run is left as it is
    assert counts == {"crashed_runs": 0, "lost_items": 0, "expired_requests": 0}
    found = store.get_run(run_id=run.run_id)
    assert found is not None
    assert found.live
    assert store.code_items(run.run_id)[0].status == "running"


def test_cleanup_leaves_live_runs(store: Store, add_run: AddRun) -> None:
    # Given a live run that started an hour ago, in the middle of a cell
    run = add_run(started_at=now() - 3600)
    store.start_code_item(run.run_id, "cell", "x = 1", started_at=now() - 3600)

    # When everything older than a second is cleaned up
    counts = store.cleanup(1)

    # Then nothing changed
    assert counts == {"crashed_runs": 0, "lost_items": 0, "expired_requests": 0}
    assert store.code_items(run.run_id)[0].status == "running"


def test_cleanup_with_selected_ids_touches_only_those(store: Store, add_run: AddRun) -> None:
    # Given a dead run, an hour old, with two running items
    run = add_run(dead=True, started_at=now() - 3600)
    chosen = store.start_code_item(run.run_id, "cell", "a()", started_at=now() - 3000)
    other = store.start_code_item(run.run_id, "cell", "b()", started_at=now() - 3000)

    # When the cleanup is limited to one of the items
    counts = store.cleanup(60, selected_ids=[chosen.id])

    # Then only that item is lost, and the run itself is left to a full cleanup
    assert counts == {"crashed_runs": 0, "lost_items": 1, "expired_requests": 0}
    statuses = {item.id: item.status for item in store.code_items(run.run_id)}
    assert statuses == {chosen.id: "lost", other.id: "running"}
    found = store.get_run(run_id=run.run_id)
    assert found is not None
    assert found.live


# Concurrency (SQLite) --------------------------------------------------------------------------

WRITERS = 16
RECORDS_PER_WRITER = 50


def _write_concurrently(path: str, start: Event, errors: Queue[str]) -> None:
    """One writer process: register, then record code and append records, as fast as it can."""
    try:
        store = SQLiteStore(path)
        me = ProcessIdentity.current()
        run = store.register_run(
            ProcessRecord(
                run_id=uuid.uuid4().hex,
                name=unique_name("writer"),
                user_id="tester",
                kind="script",
                host=me.host,
                pid=me.pid,
                create_time=me.create_time,
                started_at=now(),
            )
        )
        start.wait(60)
        for n in range(RECORDS_PER_WRITER):
            item = store.start_code_item(run.run_id, "script", f"step({n})")
            store.append_record(run.run_id, "steps", f'{{"pid": {me.pid}, "n": {n}}}')
            store.finish_code_item(item.id, Outcome(status="ok", duration=0.0))
        store.end_run(run.run_id, "finished", exit_status=0)
        store.close()
    except BaseException:
        errors.put(traceback.format_exc())
        raise


def test_sqlite_takes_many_processes_writing_at_once(tmp_path: Path) -> None:
    # Given sixteen processes opening one SQLite file
    path = str(tmp_path / "tablevault.sqlite3")
    context = multiprocessing.get_context("spawn")
    start, errors = context.Event(), context.Queue()
    writers = [
        context.Process(target=_write_concurrently, args=(path, start, errors))
        for _ in range(WRITERS)
    ]
    for writer in writers:
        writer.start()

    # When they all record code and append records at the same moment
    start.set()
    for writer in writers:
        writer.join(120)

    # Then none failed, and every record and code item is there
    failures = []
    while True:
        try:
            failures.append(errors.get(timeout=0.1))
        except queue.Empty:
            break
    assert failures == []
    assert [writer.exitcode for writer in writers] == [0] * WRITERS
    store = SQLiteStore(path)
    try:
        rows = store.query_records("steps")
        assert len(rows) == WRITERS * RECORDS_PER_WRITER
        assert len({(row["pid"], row["n"]) for row in rows}) == WRITERS * RECORDS_PER_WRITER
        runs = store.list_runs(live_only=False)
        assert len(runs) == WRITERS
        assert all(run.status == "finished" for run in runs)
        assert all(store.code_item_count(run.run_id) == RECORDS_PER_WRITER for run in runs)
    finally:
        store.close()
