"""Select, per format the profile ships, the artifact that passes the gate, fits the profile and is best for the
objective (``--select``, else the profile's; :mod:`compressor.selection`), and say why.

A format with no usable candidate is recorded as unshipped with the reason (the build ships what it can); only
when no format has one does the build fail with :class:`GateFailedError`, naming the closest candidate.
"""

from __future__ import annotations

from compressor.errors import GateFailedError
from compressor.passes.contract import build_pass
from compressor.selection import explain, ranked
from compressor.state import BuildInputs, BuildResults, Candidate


@build_pass(reads=("candidates",), writes=("selected", "selection", "unshipped"))
def run(inputs: BuildInputs, results: BuildResults) -> None:
    stage = inputs.progress.stage("select", 1)
    for fmt in inputs.profile.accepts.formats:
        indexed = [(i, c) for i, c in enumerate(results.candidates) if c.format is fmt]
        usable = [(i, c) for i, c in indexed if c.usable]
        if not usable:
            results.unshipped[fmt] = _failure_message(inputs, [c for _, c in indexed], fmt.value)
            continue
        order = ranked([c for _, c in usable], inputs.objective)
        results.selected[fmt] = usable[order[0]][0]
        source = "--select" if inputs.options.select else f"profile {inputs.profile.name}"
        results.selection[fmt] = explain([c for _, c in usable], order, inputs.objective, source).to_json()
    if not results.selected:
        raise GateFailedError(" ".join(results.unshipped.values()))
    chosen = ", ".join(results.candidates[i].name for i in results.selected.values())
    missing = "; ".join(f"no {fmt.value}" for fmt in results.unshipped)
    stage.advance(f"{chosen}{' (' + missing + ')' if missing else ''}")


def _failure_message(inputs: BuildInputs, candidates: list[Candidate], fmt: str) -> str:
    options = inputs.options
    gate = (
        f"accuracy drop <= {options.max_accuracy_drop} pt"
        if inputs.data.validation.labels is not None
        else f"mean cosine >= {options.min_cosine}"
    )
    floor = inputs.gate.min_top1_agreement
    if inputs.data.validation.labels is None and floor is not None:
        gate += f", top-1 kept on >= {floor:.0%} of classifier outputs"
    measured = [c for c in candidates if c.metrics is not None]
    if not measured:
        reasons = {c.error for c in candidates}
        if len(reasons) == 1 and len(candidates) > 1:
            errors = f"every candidate ({', '.join(c.name for c in candidates)}): {reasons.pop()}"
        else:
            errors = "; ".join(f"{c.name}: {c.error}" for c in candidates) or "no candidate was produced"
        return f"no {fmt} candidate for profile {inputs.profile.name!r} could be built: {errors.rstrip('.')}."
    best = min(measured, key=_closeness)
    m = best.metrics or {}
    figures = f"cosine mean {m['cosine_mean']:.6f}, max abs error {m['max_abs_error']:.4g}"
    if m["accuracy_drop"] is not None:
        figures = f"accuracy {100 * m['accuracy']:.2f}% (drop {m['accuracy_drop']:.2f} pt), " + figures
    elif m.get("top1_agreement") is not None:
        figures += f", top-1 agreement {m['top1_agreement']:.4f} ({m['top1_changed']} changed)"
    why = "failed the gate" if not best.passed_gate else f"does not fit: {'; '.join(best.fit_problems)}"
    lost = ((best.technique or {}).get("int8") or {}).get("loss_by_layer")
    if lost:  # integer-only targets: where full-integer quantization lost the most (calibration samples)
        layers = ", ".join(
            f"{e['op']} {e['scope'].rsplit('/', 1)[-1][:60]} ({e['cosine_loss_removed']:+.4f})" for e in lost[:3]
        )
        figures += f"; the layers that lose the most in int8 (cosine regained in float): {layers}"
    return (
        f"no {fmt} candidate for profile {inputs.profile.name!r} passes the gate ({gate}) and fits the profile; "
        f"the best, {best.name}, {why} with {figures}. Loosen --max-accuracy-drop (labels) or --min-cosine / "
        "--min-top1-agreement, provide more representative calibration data, or choose a profile that accepts "
        "higher precisions."
    )


def _closeness(candidate: Candidate) -> tuple:
    m = candidate.metrics or {}
    drop = m["accuracy_drop"] if m["accuracy_drop"] is not None else 0.0
    return (bool(candidate.fit_problems), drop, -m["cosine_mean"])
