"""Quantization-aware fine-tuning for integer-only profiles: an ``int8-qat`` candidate for each full-integer TFLite
candidate that missed the gate, made by :mod:`compressor.qat` from the same model (the source's PyTorch module or
the variant's) on the training samples, against the original model's outputs.

Integer-only targets cannot keep layers in float (the mixed-int8 fallback is not theirs), so training the model
to live with int8 is what is left.  The candidate is validated and measured like any other by the passes after
this one; one that cannot be made is recorded as a failed candidate with its reason, never a failed build.
"""

from __future__ import annotations

from compressor import qat
from compressor.converters import failure_reason
from compressor.passes.contract import build_pass
from compressor.profiles import Format, Precision
from compressor.state import BuildInputs, BuildResults, Candidate

VARIANT = "int8-qat"
ROUTE = "torch.export -> torchao PT2E QAT (litert-torch quantizer) -> litert-torch"


@build_pass(reads=("variants",), writes=("candidates",))
def run(inputs: BuildInputs, results: BuildResults) -> None:
    missed = [c for c in results.candidates if c.missed_as_int8_full(VARIANT)]
    modules = {v.label: v.module for v in results.variants}
    config = qat.QatConfig(steps=inputs.options.qat_steps, seed=inputs.options.finetune_seed)
    for candidate in missed:
        label = f"{candidate.variant}-{VARIANT}" if candidate.variant else VARIANT
        out = inputs.workdir / "qat" / label / f"{label}.tflite"
        made = Candidate(Format.TFLITE, Precision.INT8_FULL, out, variant=label, route=ROUTE)
        made.params, made.macs = candidate.params, candidate.macs
        stage = inputs.progress.stage(f"int8 QAT {candidate.name}", config.steps // qat.REPORT_EVERY + 1)
        try:
            module = modules[candidate.variant] if candidate.variant else inputs.source.to_torch()
            out.parent.mkdir(parents=True, exist_ok=True)
            notes = qat.quantization_aware(
                module,
                inputs.sample_args(),
                inputs.data.training,
                inputs.source.teacher(inputs.sample_args()),
                config,
                out,
                stage,
            )
        except Exception as exc:  # noqa: BLE001 - a failed candidate, not a failed build
            made.path, made.error = None, failure_reason("int8 QAT", exc)
            results.candidates.append(made)
            continue
        stage.advance("converted")
        kept = {k: v for k, v in (candidate.technique or {}).items() if k != "int8"}
        made.technique = {**kept, "qat": notes}
        results.candidates.append(made)
