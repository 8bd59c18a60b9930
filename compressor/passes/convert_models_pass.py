"""Convert the model as submitted, and every variant, to each format the profile ships.

One :func:`~compressor.converters.convert` call per (model, format), each in its own work folder: the source model
through its own route (:class:`~compressor.sources.Source`), a variant as the module it is.  Candidates carry the
variant's label, parameter and MAC counts and how it was made, so validation, measurement and selection treat them
like any other; a step that fails becomes a failed candidate with its reason.
"""

from __future__ import annotations

from collections.abc import Callable

from compressor.converters import ConvertInput, convert, converters
from compressor.passes.contract import build_pass
from compressor.profiles import Precision
from compressor.progress import Stage
from compressor.sources import ModuleSource, Source
from compressor.state import BuildInputs, BuildResults, Candidate, Variant


@build_pass(reads=("macs", "variants"), writes=("candidates", "bases"))
def run(inputs: BuildInputs, results: BuildResults) -> None:
    models: list[tuple[Variant | None, Source]] = [(None, inputs.source)]
    models += [(v, ModuleSource(inputs.source.inputs, v.params, v.module)) for v in results.leaves()]
    variant: Variant | None
    weight_bits = inputs.profile.accepts.onnx_weight_bits()  # reads the build host's CPU flags for 'host'
    for fmt in inputs.profile.accepts.formats:
        converter = converters.get(fmt.value)
        steps = 1 + len([p for p in inputs.precisions() if p in converter.precisions])
        stage = inputs.progress.stage(f"convert {fmt.value}", steps * len(models))
        for variant, source in models:
            label = variant.label if variant else ""
            job = ConvertInput(
                source=source,
                sample_args=inputs.sample_args(),
                calibration=inputs.data.calibration,
                workdir=inputs.workdir / "convert" / (label or "source") / fmt.value,
                precisions=inputs.precisions(),
                weight_granularity="tensor" if variant is not None and variant.per_tensor_weights else "channel",
                dynamic_batch=not inputs.profile.accepts.static_shapes,
                log=inputs.log,
                calibration_method=inputs.options.calibration,
                bias_correction=inputs.options.bias_correction,
                gptq=inputs.options.gptq,
                float_activations=inputs.options.int8_fallback,
                onnx_fp16=inputs.profile.accepts.onnx_fp16,
                onnx_weight_bits=weight_bits,
                op_allowlist=inputs.profile.accepts.op_allowlist,
            )
            conversion = convert(fmt, job, _progress(stage, label or "model"))
            if conversion.base is not None:
                results.bases[(label, fmt)] = conversion.base
            for artifact in conversion.artifacts:
                candidate = Candidate(
                    artifact.format,
                    artifact.precision,
                    artifact.path,
                    artifact.error,
                    route=_route(source, fmt, artifact.precision, converter.route),
                )
                if variant is not None:
                    candidate.variant, candidate.technique = variant.label, variant.technique
                    candidate.params = variant.params
                    candidate.macs = variant.technique.get("after", {}).get("macs")
                if artifact.notes:  # how it was quantized: calibration method, bias correction; fp16's form
                    key = "fp16" if artifact.precision is Precision.FP16 else "int8"
                    candidate.technique = {**(candidate.technique or {}), key: artifact.notes}
                results.candidates.append(candidate)


def _progress(stage: Stage, label: str) -> Callable[[str], None]:
    return lambda step: stage.advance(f"{label}: {step}")


def _route(source: Source, fmt, precision, quantizer: str) -> str:
    """Which tools made an artifact: the source's own route to ``fmt``, then the quantizer (fp32 needs none)."""
    own = source.route(fmt.value)
    return own if precision.value == "fp32" else f"{own} -> {quantizer}"
