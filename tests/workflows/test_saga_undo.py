"""The undo stack across runs and failures: what an incident that continues as new hands on, and what happens to the
other undos when one of them fails."""

from __future__ import annotations

import contextlib

from workflows.saga import Saga, Undo


def _restore_a(argument):
    return argument


def _restore_b(argument):
    return argument


async def _steps_undone(saga: Saga, failing: frozenset[str] = frozenset()) -> list[str]:
    """The steps undone, in the order they were; `failing` ones raise instead."""
    undone: list[str] = []

    async def run(undo: Undo) -> str:
        if undo.step in failing:
            raise RuntimeError(f"{undo.step}: refused for good")
        undone.append(undo.step)
        return undo.step

    with contextlib.suppress(RuntimeError):  # what the failure stopped is what the test looks at
        await saga.compensate(run)
    return undone


def test_register_keeps_what_each_undo_needs_oldest_first():
    saga = Saga()
    saga.register("isolate_network", _restore_a, {"eni": "eni-1"})
    saga.register("protect_instance", _restore_b, {"instance": "i-1"})
    assert saga.undos == [
        Undo("isolate_network", _restore_a, {"eni": "eni-1"}),
        Undo("protect_instance", _restore_b, {"instance": "i-1"}),
    ]


def test_the_handed_on_stack_is_a_copy():
    saga = Saga()
    saga.register("isolate_network", _restore_a, 1)
    handed_on = saga.undos
    handed_on.clear()
    assert len(saga) == 1, "what a run hands on cannot empty the stack it still holds"


async def test_a_continued_incident_undoes_its_new_steps_first_then_the_previous_runs():
    previous = Saga()
    previous.register("isolate_network", _restore_a, 1)
    previous.register("protect_instance", _restore_b, 2)

    continued = Saga()
    continued.register("tag_resource", _restore_a, 3)  # registered in the new run before the stack arrived
    continued.restore(previous.undos)
    assert len(continued) == 3
    assert await _steps_undone(continued) == ["tag_resource", "protect_instance", "isolate_network"]


async def test_an_undo_that_reports_its_failure_leaves_every_other_to_run():
    """The incident's runner says a failed undo in its result (UNDO_FAILED): the others run, newest first."""
    saga = Saga()
    for step in ("isolate_network", "protect_instance", "tag_resource"):
        saga.register(step, _restore_a, step)

    async def run(undo: Undo) -> tuple[str, str]:
        return undo.step, "undo_failed" if undo.step == "protect_instance" else "undone"

    assert await saga.compensate(run) == [
        ("tag_resource", "undone"),
        ("protect_instance", "undo_failed"),
        ("isolate_network", "undone"),
    ]
    assert len(saga) == 0


async def test_an_undo_that_raises_leaves_every_other_to_run():
    saga = Saga()
    for step in ("isolate_network", "protect_instance", "tag_resource"):
        saga.register(step, _restore_a, step)
    assert await _steps_undone(saga, failing=frozenset({"protect_instance"})) == ["tag_resource", "isolate_network"]
