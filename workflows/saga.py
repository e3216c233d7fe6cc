"""The saga: undos registered before each step acts, run in reverse when the incident must be undone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Undo:
    step: str  # the name of the step it undoes
    activity: Callable[[Any], Any]  # the undo activity
    argument: Any


class Saga:
    """A stack of undos. Register before acting: a step that fails half-way is undone too, which is
    safe because every undo restores a recorded prior state and is itself idempotent."""

    def __init__(self) -> None:
        self._undos: list[Undo] = []

    def register(self, step: str, activity: Callable[[Any], Any], argument: Any) -> None:
        self._undos.append(Undo(step, activity, argument))

    @property
    def undos(self) -> list[Undo]:
        """The stack, oldest first (what a run hands the next when the incident continues as new)."""
        return list(self._undos)

    def restore(self, undos: list[Undo]) -> None:
        """The stack the previous run held, oldest first, under the steps registered since."""
        self._undos = [*undos, *self._undos]

    def __len__(self) -> int:
        return len(self._undos)

    async def compensate(self, run: Callable[[Undo], Awaitable[Any]]) -> list[Any]:
        """Run every undo, newest first. One failing undo does not stop the others: the first failure is raised
        once every other undo has run."""
        results: list[Any] = []
        failure: Exception | None = None
        while self._undos:
            try:
                results.append(await run(self._undos.pop()))
            except Exception as error:  # noqa: BLE001 - the runner's failure, kept for after the rest
                failure = failure or error
        if failure is not None:
            raise failure
        return results
