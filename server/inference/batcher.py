"""Optional dynamic batching for ModelInfer: concurrent requests for one model, arriving within a short window,
run as one onnxruntime call along the batch axis, and each caller gets its own rows back.

Only requests that can be stacked share a run: the model's inputs all have a dynamic first dimension, and the
requests agree on every other dimension, on the datatypes and on the outputs asked for.  Anything else runs alone.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from server.inference.repository import ServedModel


@dataclass
class _Request:
    feeds: dict[str, np.ndarray]
    outputs: list[str]
    rows: int
    key: tuple
    result: Future = field(default_factory=Future)


def _key(feeds: dict[str, np.ndarray], outputs: list[str]) -> tuple:
    """Requests with equal keys can be stacked along axis 0."""
    return tuple(outputs), tuple(sorted((n, a.dtype.str, a.shape[1:]) for n, a in feeds.items()))


def batchable(model: ServedModel) -> bool:
    """Whether every input and output of ``model`` has a dynamic first (batch) dimension."""
    return all(s.shape and s.shape[0] < 0 for s in (*model.inputs, *model.outputs))


IDLE_EXIT_S = 60.0  # a model's batching thread ends after this long without requests (replaced versions go away)


class Batcher:
    """``run(model, feeds, outputs)`` like ``model.run``; with ``max_batch > 1`` it may share the call with others.

    Each model being batched has one thread and one queue; the thread ends, and lets go of the model, once no
    request came for ``idle_exit_s``, so versions replaced on the server do not keep threads and sessions alive.
    """

    def __init__(self, max_batch: int = 1, window_s: float = 0.0, idle_exit_s: float = IDLE_EXIT_S) -> None:
        self.max_batch, self.window_s, self.idle_exit_s = max_batch, window_s, idle_exit_s
        self._queues: dict[int, queue.SimpleQueue] = {}
        self._lock = threading.Lock()  # held to enqueue and to retire a queue, so no request lands in a dead one

    def run(self, model: ServedModel, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        """The outputs for ``feeds``; the same arrays an unbatched ``model.run`` returns."""
        rows = next(iter(feeds.values())).shape[0] if feeds else 0
        if self.max_batch <= 1 or not batchable(model) or not 0 < rows < self.max_batch:
            return model.run(feeds, outputs)
        request = _Request(feeds, outputs, rows, _key(feeds, outputs))
        with self._lock:
            pending = self._queues.get(id(model))
            if pending is None:
                pending = self._queues[id(model)] = queue.SimpleQueue()
                threading.Thread(
                    target=self._loop, args=(model, pending), name=f"batcher-{model.name}", daemon=True
                ).start()
            pending.put(request)
        return request.result.result()

    def active_models(self) -> int:
        """How many models have a batching thread now."""
        with self._lock:
            return len(self._queues)

    def _next(self, model: ServedModel, pending: queue.SimpleQueue) -> _Request | None:
        """The next request, or None once the model has been idle for ``idle_exit_s`` (its queue is then retired)."""
        while True:
            try:
                return pending.get(timeout=self.idle_exit_s)
            except queue.Empty:
                with self._lock:
                    if pending.empty():
                        del self._queues[id(model)]
                        return None

    def _loop(self, model: ServedModel, pending: queue.SimpleQueue) -> None:
        """One thread per model: take the first waiting request, gather companions for the window, run them."""
        held: list[_Request] = []
        while True:
            first = held.pop(0) if held else self._next(model, pending)
            if first is None:
                return
            batch, rows, deadline = [first], first.rows, time.monotonic() + self.window_s
            while rows < self.max_batch:
                try:  # what is queued already joins at once; then wait out the window (0: never wait)
                    left = deadline - time.monotonic()
                    other = pending.get(timeout=left) if left > 0 else pending.get_nowait()
                except queue.Empty:
                    break
                if other.key == first.key and rows + other.rows <= self.max_batch:
                    batch.append(other)
                    rows += other.rows
                else:
                    held.append(other)  # runs in a later batch, in arrival order
            _run_batch(model, batch)


def _run_batch(model: ServedModel, batch: list[_Request]) -> None:
    try:
        if len(batch) == 1:
            batch[0].result.set_result(model.run(batch[0].feeds, batch[0].outputs))
            return
        feeds = {name: np.concatenate([r.feeds[name] for r in batch]) for name in batch[0].feeds}
        arrays = model.run(feeds, batch[0].outputs)
        start = 0
        for r in batch:
            r.result.set_result([a[start : start + r.rows] for a in arrays])
            start += r.rows
    except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the error
        for r in batch:
            if not r.result.done():
                r.result.set_exception(exc)
