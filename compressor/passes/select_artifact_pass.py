"""Select, per format the profile ships, the artifact that passes the gate, fits the profile and is best for the
objective (``--select``, else the profile's; :mod:`compressor.selection`), and say why.

A format with no usable candidate is recorded as unshipped with the reason (the build ships what it can); only
when no format has one does the build fail with :class:`GateFailedError`, naming the closest candidate.

Integer-only profiles (an Edge TPU) are the exception: such a target runs full-integer models or nothing, so there
is no higher precision to fall back on.  When no candidate passes the gate, the closest one that fits the profile
ships, marked below the gate (``selection.by_format.<fmt>.below_gate``) with its figures and the layers that lose
the most, unless ``--strict-gate`` asks for the failure instead.
"""

from __future__ import annotations

from compressor.errors import GateFailedError
from compressor.passes.contract import build_pass
from compressor.selection import Choice, explain, ranked
from compressor.state import BuildInputs, BuildResults, Candidate


@build_pass(reads=("candidates",), writes=("selected", "selection", "unshipped"))
def run(inputs: BuildInputs, results: BuildResults) -> None:
    stage = inputs.progress.stage("select", 1)
    for fmt in inputs.profile.accepts.formats:
        indexed = [(i, c) for i, c in enumerate(results.candidates) if c.format is fmt]
        usable = [(i, c) for i, c in indexed if c.usable]
        if not usable:
            closest = _closest_integer(inputs, indexed)
            if closest is None:
                results.unshipped[fmt] = _failure_message(inputs, [c for _, c in indexed], fmt.value)
                continue
            index, candidate = closest
            results.selected[fmt] = index
            results.selection[fmt] = _below_gate_choice(inputs, candidate, len(indexed)).to_json()
            continue
        order = ranked([c for _, c in usable], inputs.objective)
        results.selected[fmt] = usable[order[0]][0]
        source = "--select" if inputs.options.select else f"profile {inputs.profile.name}"
        results.selection[fmt] = explain([c for _, c in usable], order, inputs.objective, source).to_json()
    if not results.selected:
        raise GateFailedError(" ".join(results.unshipped.values()))
    chosen = ", ".join(
        results.candidates[i].name + (" below the gate" if results.selection[f]["below_gate"] else "")
        for f, i in results.selected.items()
    )
    missing = "; ".join(f"no {fmt.value}" for fmt in results.unshipped)
    stage.advance(f"{chosen}{' (' + missing + ')' if missing else ''}")


def _closest_integer(inputs: BuildInputs, indexed: list[tuple[int, Candidate]]) -> tuple[int, Candidate] | None:
    """On an integer-only profile without --strict-gate: the measured candidate closest to the gate among those that
    fit the profile (full-integer, ops it runs), else None."""
    if not inputs.profile.accepts.integer_only or inputs.options.strict_gate:
        return None
    fitting = [(i, c) for i, c in indexed if c.error is None and c.metrics is not None and not c.fit_problems]
    informative = [(i, c) for i, c in fitting if _carries_signal(c)]
    return min(informative, key=lambda ic: _closeness(ic[1])) if informative else None


def _carries_signal(candidate: Candidate) -> bool:
    """False for a candidate no closer to the original's outputs than all zeros are (mean cosine 0, which is also
    what :func:`compressor.metrics.compare` gives outputs rounded to zero): such a candidate ships nothing to check."""
    return (candidate.metrics or {}).get("cosine_mean", 0.0) > 0.0


def _below_gate_choice(inputs: BuildInputs, candidate: Candidate, total: int) -> Choice:
    profile = inputs.profile.name
    sentence = (
        f"{candidate.name} shipped BELOW the accuracy gate ({_gate_text(inputs)}) with {_figures(candidate)}: "
        f"profile {profile} runs full-integer models only and none of the {total} candidates passed, so the closest "
        "one that fits ships; check it on your own task before release (--strict-gate fails the build instead; "
        "--qat-steps with more training data, or more representative calibration data, may close the gap)."
    )
    return Choice(inputs.objective, candidate.name, None, None, None, 0, sentence, below_gate=True)


def _gate_text(inputs: BuildInputs) -> str:
    options = inputs.options
    gate = (
        f"accuracy drop <= {options.max_accuracy_drop} pt"
        if inputs.data.validation.labels is not None
        else f"mean cosine >= {options.min_cosine}"
    )
    floor = inputs.gate.min_top1_agreement
    if inputs.data.validation.labels is None and floor is not None:
        gate += f", top-1 kept on >= {floor:.0%} of classifier outputs"
    return gate


def _figures(candidate: Candidate) -> str:
    """What was measured of ``candidate`` against the original, and where full-integer quantization lost the most."""
    m = candidate.metrics or {}
    figures = f"cosine mean {m['cosine_mean']:.6f}, max abs error {m['max_abs_error']:.4g}"
    if m["accuracy_drop"] is not None:
        figures = f"accuracy {100 * m['accuracy']:.2f}% (drop {m['accuracy_drop']:.2f} pt), " + figures
    elif m.get("top1_agreement") is not None:
        figures += f", top-1 agreement {m['top1_agreement']:.4f} ({m['top1_changed']} changed)"
    lost = ((candidate.technique or {}).get("int8") or {}).get("loss_by_layer")
    if lost:  # integer-only targets: where full-integer quantization lost the most (calibration samples)
        layers = ", ".join(
            f"{e['op']} {e['scope'].rsplit('/', 1)[-1][:60]} ({e['cosine_loss_removed']:+.4f})" for e in lost[:3]
        )
        figures += f"; the layers that lose the most in int8 (cosine regained in float): {layers}"
    return figures


def _failure_message(inputs: BuildInputs, candidates: list[Candidate], fmt: str) -> str:
    gate = _gate_text(inputs)
    measured = [c for c in candidates if c.metrics is not None]
    if not measured:
        reasons = {c.error for c in candidates}
        if len(reasons) == 1 and len(candidates) > 1:
            errors = f"every candidate ({', '.join(c.name for c in candidates)}): {reasons.pop()}"
        else:
            errors = "; ".join(f"{c.name}: {c.error}" for c in candidates) or "no candidate was produced"
        return f"no {fmt} candidate for profile {inputs.profile.name!r} could be built: {errors.rstrip('.')}."
    best = min(measured, key=_closeness)
    parts = []
    if not best.passed_gate:
        zeros = "" if _carries_signal(best) else " (its outputs are no closer to the original's than all zeros)"
        parts.append("failed the gate" + zeros)
    if best.fit_problems:
        parts.append(f"does not fit ({'; '.join(best.fit_problems)})")
    why = ", and ".join(parts) + ("," if len(parts) > 1 else "")
    return (
        f"no {fmt} candidate for profile {inputs.profile.name!r} passes the gate ({gate}) and fits the profile; "
        f"the best, {best.name}, {why} with {_figures(best)}. Loosen --max-accuracy-drop (labels) or --min-cosine / "
        "--min-top1-agreement, provide more representative calibration data, or choose a profile that accepts "
        "higher precisions."
    )


def _closeness(candidate: Candidate) -> tuple:
    m = candidate.metrics or {}
    drop = m["accuracy_drop"] if m["accuracy_drop"] is not None else 0.0
    return (bool(candidate.fit_problems), drop, -m["cosine_mean"])
