"""Mixed precision by sensitivity: TFLite candidates whose weights are int4, int8 or fp16 per layer.

The search itself is :mod:`compressor.mixed_precision`; this pass feeds it the fp32 flatbuffer the TFLite
conversion of the submitted model made, the calibration samples with the original model's outputs on them (the
plan is fitted there; validation judges it on samples it never saw), and the gate, and appends the candidate it
plans.  When the smallest plan misses the gate and the model trains in PyTorch, a second candidate, ``mixed-qat``,
is the model trained on the int4 grid by distillation on the training samples (:mod:`compressor.int4_qat`), then
converted and quantized the same way; one that cannot be made is a failed candidate with its reason, never a failed
build.  Selection then takes whichever passes validation at the smaller size.
"""

from __future__ import annotations

from pathlib import Path

from compressor import mixed_precision
from compressor.converters import failure_reason
from compressor.holdout import fitting_gate
from compressor.native_output import captured
from compressor.passes.contract import build_pass
from compressor.profiles import Format
from compressor.sources import ModuleSource
from compressor.state import BuildInputs, BuildResults, Candidate

VARIANT = "mixed"
QAT_VARIANT = "mixed-qat"
QAT_ROUTE = "int4 quantization-aware distillation (PyTorch) -> litert-torch -> ai-edge-quantizer per-op recipe"


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
    if search.effects and inputs.options.int4_qat_steps > 0 and inputs.source.has_torch_route:
        results.candidates.append(_trained_on_grid(inputs, base))


def _trained_on_grid(inputs: BuildInputs, base: Path) -> Candidate:
    """The ``mixed-qat`` candidate: the source model trained on the int4 grid, converted, quantized."""
    from compressor import int4_qat

    work = inputs.workdir / QAT_VARIANT
    out = work / f"{QAT_VARIANT}.tflite"
    made = Candidate(Format.TFLITE, mixed_precision.PRECISION, out, variant=QAT_VARIANT, route=QAT_ROUTE)
    options = inputs.options
    config = int4_qat.Int4QatConfig(
        steps=options.int4_qat_steps, seconds=options.int4_qat_seconds, seed=options.finetune_seed
    )
    stage = inputs.progress.stage("int4 QAT", config.steps // int4_qat.REPORT_EVERY + 2)
    try:
        work.mkdir(parents=True, exist_ok=True)
        args = inputs.sample_args()
        teacher = inputs.source.teacher(args)
        student, trained, notes = int4_qat.train_int4(
            inputs.source.to_torch(), base, inputs.data.training, teacher, args, config, stage
        )
        fp32 = work / "trained-fp32.tflite"
        with captured(inputs.log):
            trainee = ModuleSource(inputs.source.inputs, inputs.source.params, student)
            trainee.convert_tflite(fp32, args, work, inputs.profile.accepts.op_allowlist)
        stage.advance("converted the trained model")
        notes["layers"] = int4_qat.quantize_trained(student, trained, fp32, out, inputs.log)
        stage.advance("quantized: " + ", ".join(f"{count} {rung}" for rung, count in notes["layers"].items()))
    except Exception as exc:  # noqa: BLE001 - a failed candidate, not a failed build
        made.path, made.error = None, failure_reason("int4 QAT", exc)
        return made
    made.technique = {"int4_qat": notes}
    return made
