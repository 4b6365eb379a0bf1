"""The order create reads its children's messages in (``crid.oci.verbs.create.in_order``)."""

from __future__ import annotations

from crid.oci.verbs.create import in_order

from crid.jsontypes import Json

PID: Json = {"pid": 42}
HOOKS: Json = {"hooks": "createRuntime"}
READY: Json = {"ready": True}


def read(messages: list[Json]) -> list[Json]:
    """What create would act on, in order, until the pipe closes after ``messages``."""
    pending = iter(messages)
    taken: list[Json] = []
    for msg in in_order(lambda: next(pending, None)):
        if msg is None:
            return taken
        taken.append(msg)
    raise AssertionError("in_order ended without the pipe closing")


def test_init_outrunning_the_first_child_waits_for_the_pid() -> None:
    assert read([HOOKS, PID, READY]) == [PID, HOOKS, READY]


def test_messages_in_their_own_order_pass_as_they_came() -> None:
    userns: Json = {"userns": 7}
    assert read([userns, PID, HOOKS, READY]) == [userns, PID, HOOKS, READY]


def test_an_error_or_a_closed_pipe_before_the_pid_is_not_held() -> None:
    error: Json = {"error": "mount failed"}
    assert read([HOOKS, error]) == [error]
    assert read([HOOKS]) == []
