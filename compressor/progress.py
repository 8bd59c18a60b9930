"""Progress events: the CLI draws them as bars, the server streams them to WatchJob."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    stage: str
    done: int
    total: int
    message: str = ""

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0


ProgressSink = Callable[[ProgressEvent], None]


class Stage:
    """One stage of a build; each :meth:`advance` emits an event."""

    def __init__(self, sink: ProgressSink, name: str, total: int) -> None:
        self._sink, self.name, self.total, self.done = sink, name, max(total, 1), 0
        sink(ProgressEvent(name, 0, self.total, "started"))

    def advance(self, message: str = "", steps: int = 1) -> None:
        self.done = min(self.done + steps, self.total)
        self._sink(ProgressEvent(self.name, self.done, self.total, message))

    def note(self, message: str) -> None:
        self._sink(ProgressEvent(self.name, self.done, self.total, message))


class Progress:
    def __init__(self, sink: ProgressSink | None = None) -> None:
        self._sink = sink or (lambda _event: None)

    def stage(self, name: str, total: int) -> Stage:
        return Stage(self._sink, name, total)
