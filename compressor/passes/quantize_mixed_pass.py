"""Mixed precision by sensitivity: one more TFLite candidate whose weights are int4, int8 or fp16 per layer.

The search itself is :mod:`compressor.mixed_precision`; this pass feeds it the fp32 flatbuffer the TFLite
conversion of the submitted model made, the calibration samples with the original model's outputs on them (the
plan is fitted there; validation judges it on samples it never saw), and the gate, and appends the candidate it
plans.
"""

from __future__ import annotations

from compressor import mixed_precision
from compressor.holdout import fitting_gate
from compressor.passes.contract import build_pass
from compressor.profiles import Format
from compressor.state import BuildInputs, BuildResults, Candidate

VARIANT = "mixed"


@build_pass(reads=("bases",), writes=("candidates",))
def run(inputs: BuildInputs, results: BuildResults) -> None:
    base = results.bases.get(("", Format.TFLITE))
    out = inputs.workdir / "mixed" / f"{VARIANT}.tflite"
    candidate = Candidate(
        Format.TFLITE, mixed_precision.PRECISION, out, variant=VARIANT, route="ai-edge-quantizer per-op recipe"
    )
    if base is None:
        candidate.path, candidate.error = None, "mixed precision needs the fp32 TFLite conversion, which failed"
        results.candidates.append(candidate)
        return
    fitting = inputs.data.calibration
    reference = inputs.source.reference_runner().run(fitting.inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    gate = fitting_gate(inputs.gate)  # fitted here, judged on validation samples it never saw
    search = mixed_precision.Search(base, fitting, reference, gate, out.parent, inputs.progress)
    plan = search.best_plan()
    search.quantize(plan, out)
    candidate.technique = {"mixed_precision": mixed_precision.technique(search, plan)}
    results.candidates.append(candidate)
