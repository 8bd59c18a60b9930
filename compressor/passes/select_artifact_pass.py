"""Select, per format the profile ships, the smallest artifact that passes the gate and fits the profile."""

from __future__ import annotations

from compressor.errors import GateFailedError
from compressor.report import build_report
from compressor.state import BuildState, Candidate


def run(state: BuildState) -> None:
    stage = state.progress.stage("select", 1)
    for fmt in state.profile.accepts.formats:
        indexed = [(i, c) for i, c in enumerate(state.candidates) if c.format is fmt]
        usable = [(i, c) for i, c in indexed if c.usable]
        if not usable:
            raise GateFailedError(_failure_message(state, [c for _, c in indexed]), build_report(state, {}, {}))
        best, _ = min(usable, key=lambda ic: (ic[1].size_bytes, ic[1].host_latency_ms["p50"]))
        state.selected[fmt] = best
    stage.advance(", ".join(state.candidates[i].name for i in state.selected.values()))


def _failure_message(state: BuildState, candidates: list[Candidate]) -> str:
    options = state.options
    gate = (
        f"accuracy drop <= {options.max_accuracy_drop} pt"
        if state.data.labels is not None
        else f"mean cosine >= {options.min_cosine}"
    )
    measured = [c for c in candidates if c.metrics is not None]
    if not measured:
        errors = "; ".join(f"{c.name}: {c.error}" for c in candidates) or "no candidate was produced"
        return f"no candidate for profile {state.profile.name!r} could be built: {errors}"
    best = min(measured, key=_closeness)
    m = best.metrics
    figures = f"cosine mean {m['cosine_mean']:.4f}, max abs error {m['max_abs_error']:.4g}"
    if m["accuracy_drop"] is not None:
        figures = f"accuracy {100 * m['accuracy']:.2f}% (drop {m['accuracy_drop']:.2f} pt), " + figures
    why = "failed the gate" if not best.passed_gate else f"does not fit: {'; '.join(best.fit_problems)}"
    return (
        f"no candidate for profile {state.profile.name!r} passes the gate ({gate}) and fits the profile; "
        f"the best, {best.name}, {why} with {figures}. Loosen --max-accuracy-drop, provide more representative "
        "calibration data, or choose a profile that accepts higher precisions."
    )


def _closeness(candidate: Candidate) -> tuple:
    m = candidate.metrics
    drop = m["accuracy_drop"] if m["accuracy_drop"] is not None else 0.0
    return (bool(candidate.fit_problems), drop, -m["cosine_mean"])
