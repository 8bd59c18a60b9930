"""Accuracy-aware int8 fallback: a ``mixed-int8`` candidate for each full-integer TFLite one that missed the gate
where full-integer quantization is what lost (the variant's float artifact passes, or none was built).

The search is :mod:`compressor.int8_fallback`, on the calibration samples with the original model's outputs on
them; the candidate it plans is validated and measured like any other by the passes after this one.  Profiles that
are integer-only cannot run float layers: their failing full-integer candidates get the per-layer sensitivities
instead (``technique.int8.loss_by_layer``), which the report and the gate failure name.
"""

from __future__ import annotations

from compressor import int8_fallback
from compressor.converters import failure_reason
from compressor.holdout import fitting_gate
from compressor.passes.contract import build_pass
from compressor.profiles import Format, Precision
from compressor.state import BuildInputs, BuildResults, Candidate

VARIANT = "mixed-int8"


@build_pass(reads=("bases",), writes=("candidates", "reference_outputs"))
def run(inputs: BuildInputs, results: BuildResults) -> None:
    floats_pass = {  # variants whose float artifact passes: there, int8 is what lost the accuracy
        c.variant for c in results.candidates if c.precision in (Precision.FP32, Precision.FP16) and c.passed_gate
    }
    missed = [
        c
        for c in results.candidates
        if c.missed_as_int8_full(VARIANT) and (c.variant in floats_pass or not _has_float(results, c.variant))
    ]
    if not missed:
        return
    integer_only = inputs.profile.accepts.integer_only
    calibration = inputs.data.calibration
    reference = inputs.source.reference_runner().run(calibration.inputs)
    for candidate in missed:
        base = results.bases.get((candidate.variant, Format.TFLITE))
        if base is None:
            continue
        stage = inputs.progress.stage(f"int8 fallback {candidate.name}", len(int8_fallback.weighted_layers(base)) + 8)
        label = f"{candidate.variant}-{VARIANT}" if candidate.variant else VARIANT
        work = inputs.workdir / "fallback" / label
        notes = (candidate.technique or {}).get("int8") or {}
        out = work / f"{label}.tflite"
        fallback = Candidate(Format.TFLITE, Precision.INT8_FULL, out, variant=label, route=candidate.route)
        fallback.params, fallback.macs = candidate.params, candidate.macs
        try:
            model = int8_fallback.Int8Model(
                base, calibration, notes, work, per_tensor=bool((candidate.technique or {}).get("clusters"))
            )
            found = int8_fallback.search(
                model, calibration, reference, fitting_gate(inputs.gate), out, stage, measure_only=integer_only
            )
        except Exception as exc:  # noqa: BLE001 - a failed search is a failed candidate, not a failed build
            if not integer_only:
                fallback.path, fallback.error = None, failure_reason("int8 fallback", exc)
                results.candidates.append(fallback)
            continue
        if integer_only:  # what was lost where: the full-integer result stays the best this target can run
            candidate.technique = {
                **(candidate.technique or {}),
                "int8": {**notes, "loss_by_layer": found.technique()["most_sensitive"]},
            }
            continue
        fallback.technique = {
            **{k: v for k, v in (candidate.technique or {}).items() if k != "int8"},
            "int8": {**notes, "fallback": found.technique()},
        }
        results.candidates.append(fallback)


def _has_float(results: BuildResults, variant: str) -> bool:
    return any(c.variant == variant and c.precision in (Precision.FP32, Precision.FP16) for c in results.candidates)
