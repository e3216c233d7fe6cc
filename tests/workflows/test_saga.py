"""The undo stack on its own: undos run newest first, each once."""

from __future__ import annotations

from activities.tagging import restore_resource_tags
from workflows.saga import Saga, Undo


def _undo_a(argument):
    return argument


def _undo_b(argument):
    return argument


async def test_undos_run_newest_first_and_each_only_once():
    saga = Saga()
    saga.register("tag_resource", restore_resource_tags, "tags")
    saga.register("a", _undo_a, 1)
    saga.register("b", _undo_b, 2)
    assert len(saga) == 3
    ran: list[Undo] = []

    async def run(undo: Undo) -> str:
        ran.append(undo)
        return undo.step

    assert await saga.compensate(run) == ["b", "a", "tag_resource"]
    assert [(u.activity, u.argument) for u in ran] == [(_undo_b, 2), (_undo_a, 1), (restore_resource_tags, "tags")]
    assert len(saga) == 0
    assert await saga.compensate(run) == [], "a second compensation finds nothing left to undo"
