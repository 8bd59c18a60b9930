"""Selection by objective: which of the candidates that pass the gate and fit the profile ships, and why.

Three objectives, the default a profile field (``selection.objective``), overridden by ``--select``:

- ``size``: the smallest file; among files within :data:`SIZE_TIE` of it, the fastest.
- ``latency``: the fastest on the device; among those within :data:`LATENCY_TIE` of it (host timing noise), the
  smallest.
- ``balanced``: the least size x latency, each relative to the best of the candidates: halving one is worth doubling
  the other; products within :data:`LATENCY_TIE` of the least are as good, and the smallest of them wins.

Latency is the profile's estimate for the device, which is the host's measured p50 scaled by the profile's compute
figures (``compressor.measure.estimate_device_latency``); without an estimate, the host p50.  :func:`explain` says
in one sentence what the pick was chosen over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from compressor.state import Candidate

OBJECTIVES = ("size", "latency", "balanced")
SIZE_TIE = 0.01  # files within 1% of the smallest are as small
LATENCY_TIE = 0.05  # latencies within 5% of the fastest are as fast (single-threaded p50 noise on a shared host)


def latency_ms(candidate: Candidate) -> float:
    """The device estimate, else the measured host p50."""
    if candidate.estimated_device_latency_ms is not None:
        return candidate.estimated_device_latency_ms
    return float((candidate.host_latency_ms or {}).get("p50", 0.0))


def ranked(candidates: Sequence[Candidate], objective: str) -> list[int]:
    """Indices into ``candidates`` (all usable, same format), best first for ``objective``."""
    if not candidates:
        return []
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown selection objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    sizes = [max(c.size_bytes, 1) for c in candidates]
    latencies = [max(latency_ms(c), 1e-9) for c in candidates]
    smallest, fastest = min(sizes), min(latencies)

    def key(i: int) -> tuple:
        if objective == "size":
            return (0, latencies[i]) if sizes[i] <= smallest * (1 + SIZE_TIE) else (1, sizes[i])
        if objective == "latency":
            return (0, sizes[i]) if latencies[i] <= fastest * (1 + LATENCY_TIE) else (1, latencies[i])
        return ((sizes[i] / smallest) * (latencies[i] / fastest), sizes[i])

    order = sorted(range(len(candidates)), key=key)
    if objective == "balanced":  # products within the latency noise of the best: the smaller file first
        best = key(order[0])[0]
        tied = sorted((i for i in order if key(i)[0] <= best * (1 + LATENCY_TIE)), key=lambda i: sizes[i])
        order = tied + [i for i in order if i not in tied]
    return order


@dataclass(frozen=True)
class Choice:
    """The pick for one format and the facts that explain it (``report.json``'s ``selection``)."""

    objective: str
    chosen: str
    runner_up: str | None
    latency_ratio: float | None  # chosen / runner-up, device estimate
    size_ratio: float | None  # chosen / runner-up, file size
    usable: int
    sentence: str
    below_gate: bool = False  # integer-only targets: the closest full-integer candidate, shipped though it missed

    def to_json(self) -> dict:
        return {
            "objective": self.objective,
            "chosen": self.chosen,
            "runner_up": self.runner_up,
            "latency_ratio": self.latency_ratio,
            "size_ratio": self.size_ratio,
            "usable": self.usable,
            "sentence": self.sentence,
            "below_gate": self.below_gate,
        }


def choice_in(report: dict, fmt: str) -> dict:
    """The selection ``report`` (report.json) records for ``fmt`` (:meth:`Choice.to_json`), empty where none is."""
    return ((report.get("selection") or {}).get("by_format") or {}).get(fmt) or {}


WHAT = {
    "size": "the smallest file",
    "latency": "the lowest device latency",
    "balanced": "the least size x latency",
}


def explain(candidates: Sequence[Candidate], order: Sequence[int], objective: str, source: str) -> Choice:
    """The sentence for the pick ``candidates[order[0]]`` against the next in ``order``.

    ``source`` says where the objective came from (``--select`` or the profile)."""
    chosen = candidates[order[0]]
    if len(order) == 1:
        sentence = (
            f"{chosen.name} chosen: the only candidate that passed the gate and fits the profile "
            f"(objective {objective}, {source})."
        )
        return Choice(objective, chosen.name, None, None, None, 1, sentence)
    other = candidates[order[1]]
    lat = latency_ms(chosen) / max(latency_ms(other), 1e-9)
    size = chosen.size_bytes / max(other.size_bytes, 1)
    sentence = (
        f"{chosen.name} chosen ({WHAT[objective]}; objective {objective}, {source}): {lat:.2f}x the latency of "
        f"{other.name} at {_percent(size)} size, of {len(order)} candidates that passed the gate and fit."
    )
    return Choice(objective, chosen.name, other.name, round(lat, 4), round(size, 4), len(order), sentence)


def _percent(ratio: float) -> str:
    change = 100 * (ratio - 1)
    if abs(change) < 0.5:
        return "the same"
    return f"{change:+.0f}%"
