"""TFLite: the source's own fp32 conversion, then every precision with ai-edge-quantizer.

PyTorch sources (and ONNX ones, through onnx2torch) reach TFLite through litert-torch, Keras sources through
TensorFlow's TFLiteConverter (:meth:`~compressor.sources.Source.convert_tflite`).  Every precision is derived from
the same fp32 flatbuffer: fp16 by casting weights, int8-dynamic by int8 weights with float activations, int8-full by
int8 weights and int8 activations calibrated on the calibration samples (int8 model inputs and outputs included, as
integer-only accelerators need).  Weights get one scale per output channel, or per tensor when asked (clustered
variants: their shared values stay shared).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from compressor import calibration, gptq, probe
from compressor.converters.base import ConvertInput, failure_reason
from compressor.errors import ConversionError
from compressor.profiles import Format, Precision


class TFLiteConverter:
    format = Format.TFLITE
    precisions = tuple(Precision)
    route = "ai-edge-quantizer"  # what derives the precisions; the fp32 flatbuffer is the source's own route

    def fp32(self, inp: ConvertInput, out: Path) -> None:
        inp.source.convert_tflite(out, inp.sample_args, inp.workdir, inp.op_allowlist)

    def quantize(self, base: Path, out: Path, precision: Precision, inp: ConvertInput) -> dict | None:
        if precision is Precision.FP32:
            shutil.copyfile(base, out)
            return None
        from ai_edge_quantizer import quantizer

        notes: dict = {}
        corrected = None
        if inp.bias_correction and precision in (Precision.INT8_DYNAMIC, Precision.INT8_FULL):
            corrected = inp.workdir / f"fp32-bias-corrected-{inp.weight_granularity}.tflite"
            per_tensor = inp.weight_granularity == "tensor"
            count = _made_once(
                corrected,
                lambda: calibration.correct_biases(base, corrected, inp.calibration.inputs, per_tensor=per_tensor),
            )
            notes["bias_correction"] = {"layers": count}
        if precision is Precision.INT8_DYNAMIC:
            return self._int8_dynamic(base, corrected, out, inp, notes)
        base = corrected or base
        engine = quantizer.Quantizer(
            calibration.model_bytes(base), recipe(precision, inp.weight_granularity == "tensor")
        )
        qsvs = None
        if engine.need_calibration:
            samples = signature_samples(base, inp.calibration.inputs)
            if samples is None:
                raise ConversionError("full-integer calibration needs a TFLite model with exactly one signature")
            qsvs = engine.calibrate(samples)
            method = "moving-average" if inp.calibration_method == "default" else inp.calibration_method
            if method == "auto":

                def write(ranges: dict, path: Path) -> None:
                    engine.quantize(ranges, enable_progress_report=False).export_model(str(path), overwrite=True)

                qsvs, chosen = calibration.choose_ranges(
                    base, inp.calibration.inputs, qsvs, write, inp.workdir / "calibration-trial.tflite"
                )
                notes["calibration"] = chosen
            else:
                qsvs = calibration.activation_ranges(base, inp.calibration.inputs, qsvs, method)
                notes["calibration"] = {"method": method}
            notes["calibration"]["samples"] = len(inp.calibration)
        engine.quantize(qsvs, enable_progress_report=False).export_model(str(out), overwrite=True)
        if precision is Precision.INT8_FULL:  # LiteRT aborts the process on some full-integer models
            refusal = probe.runtime_refusal(out, "tflite")
            if refusal:
                raise ConversionError(f"int8-full: {refusal}")
        return notes

    def _int8_dynamic(self, base: Path, corrected: Path | None, out: Path, inp: ConvertInput, notes: dict) -> dict:
        """int8-dynamic of ``base``, made from each fp32 flatbuffer on offer and the one closest to ``base`` on the
        calibration samples kept (:class:`~compressor.calibration.Scorer`; ties go to the first of: bias-corrected,
        GPTQ-rounded, plain).  The bias-corrected copy ``corrected``: dynamic quantization measures activations at
        run time, so the weight error's mean shift that correction removes is sometimes smaller than what the
        correction itself moves (all-MiniLM-L6-v2 in bench/versus.py: held-out cosine 0.99816 with it, 0.99822
        without).  The GPTQ-rounded copy (``inp.gptq``, one scale per channel only: shared per-tensor values of
        clustered variants stay shared) has the same bytes and kernels, with integers chosen for the layer's inputs
        (:mod:`compressor.gptq`).  With ``inp.float_activations``, the layers that lose the most to run-time
        activation quantization then compute on float activations
        (:func:`~compressor.calibration.float_activation_layers`)."""
        per_tensor = inp.weight_granularity == "tensor"

        def write(source: Path, path: Path, float_scopes: Sequence[str] = ()) -> None:
            from ai_edge_quantizer import quantizer

            plan = recipe(Precision.INT8_DYNAMIC, per_tensor, float_activations=float_scopes)
            engine = quantizer.Quantizer(calibration.model_bytes(source), plan)
            engine.quantize(None, enable_progress_report=False).export_model(str(path), overwrite=True)

        sources = {"bias-corrected": corrected} if corrected is not None else {}
        if inp.gptq and not per_tensor:
            rounded = inp.workdir / "fp32-gptq.tflite"
            try:
                count = _made_once(rounded, lambda: gptq.write_rounded(base, rounded, inp.calibration.inputs))
            except Exception as exc:  # noqa: BLE001 - without GPTQ the other contenders still make the file
                notes["gptq"] = {"layers": 0, "error": failure_reason("GPTQ rounding", exc)}
            else:
                notes["gptq"] = {"layers": count}
                if count:
                    sources["gptq"] = rounded
        sources["plain"] = base
        source = base
        if len(sources) == 1:
            write(base, out)
        else:
            score = calibration.Scorer(base, inp.calibration.inputs)
            trials, figures = {}, {}
            for name, path in sources.items():
                trials[name] = out.with_name(f"{out.stem}-{name}{out.suffix}")
                write(path, trials[name])
                figures[name] = score(trials[name])
            kept = max(sources, key=lambda name: figures[name][1])  # max keeps the first of equal keys
            trials.pop(kept).replace(out)
            for path in trials.values():
                path.unlink()
            source = sources[kept]
            if "bias_correction" in notes:
                notes["bias_correction"] = {
                    **notes["bias_correction"],
                    "kept": kept == "bias-corrected",
                    "scored_on": score.count,
                    "with": figures["bias-corrected"][0],
                    "without": figures["plain"][0],
                }
            if "gptq" in sources:
                notes["gptq"].update(kept=kept == "gptq", scored_on=score.count, figures=figures["gptq"][0])
            notes["weights_from"] = kept
        if inp.float_activations:
            scratch = out.with_name(f"{out.stem}-trial{out.suffix}")
            float_scopes, notes["float_activations"] = calibration.float_activation_layers(
                base, inp.calibration.inputs, lambda scopes, path: write(source, path, scopes), scratch
            )
            if float_scopes:  # the trial file holds them; otherwise ``out`` already holds ``source``'s int8-dynamic
                scratch.replace(out)
        return notes


def _made_once(path: Path, make: Callable[[], int]) -> int:
    """Write ``path`` with ``make`` unless this conversion folder has it already; return the count of layers
    ``make`` changed (kept beside the file for the next precision that uses it)."""
    count_file = path.with_name(f"{path.name}.layers")
    if not path.exists():
        count_file.write_text(str(make()))
    return int(count_file.read_text())


def recipe(precision: Precision, per_tensor_weights: bool = False, float_activations: Sequence[str] = ()):
    """ai-edge-quantizer's stock recipe for ``precision``; integer weights with one scale per tensor if asked; the
    ops whose scopes ``float_activations`` names keep int8 weights on float activations (weight-only int8).

    Depthwise kernels keep one scale per channel even then: LiteRT 2.3 computes garbage for an int8-dynamic
    depthwise convolution with a per-tensor scale (measured here, in XNNPACK and the builtin kernels alike),
    and they are too small for their size to matter.
    """
    from ai_edge_quantizer import qtyping, recipe_manager

    manager = recipe_manager.RecipeManager()
    ops = qtyping.TFLOperationName
    channelwise = qtyping.QuantGranularity.CHANNELWISE
    if precision is Precision.FP16:
        manager.add_weight_only_config(".*", ops.ALL_SUPPORTED, num_bits=16, algorithm_key="float_casting")
        return manager.get_quantization_recipe()
    granularities = [(ops.ALL_SUPPORTED, qtyping.QuantGranularity.TENSORWISE if per_tensor_weights else channelwise)]
    if per_tensor_weights:
        granularities.append((ops.DEPTHWISE_CONV_2D, channelwise))  # a later, narrower entry wins
    for op, granular in granularities:
        if precision is Precision.INT8_DYNAMIC:
            manager.add_dynamic_config(".*", op, num_bits=8, granularity=granular)
        else:
            manager.add_static_config(".*", op, activation_num_bits=8, weight_num_bits=8, weight_granularity=granular)
    for scope in float_activations:  # later entries win
        manager.add_weight_only_config(
            f"^{re.escape(scope)}$", ops.ALL_SUPPORTED, num_bits=8, granularity=granularities[0][1]
        )
    return manager.get_quantization_recipe()


def signature_samples(base: Path, inputs: dict[str, np.ndarray]) -> dict[str, list[dict[str, np.ndarray]]] | None:
    """``inputs`` (in the interpreter's positional input order, as the TFLite runner feeds them) as
    ai-edge-quantizer's calibration samples: one dict per sample, keyed by signature input name, in the dtypes the
    flatbuffer declares (litert-torch turns int64 inputs into int32).  None unless the model has one signature."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(base))
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        return None
    key = next(iter(signatures))
    by_index = {d["index"]: name for name, d in interpreter.get_signature_runner(key).get_input_details().items()}
    details = interpreter.get_input_details()
    arrays = {by_index[d["index"]]: np.asarray(a, dtype=d["dtype"]) for d, a in zip(details, inputs.values())}
    count = len(next(iter(arrays.values())))
    if all(len(d["shape"]) and d["shape"][0] == 1 for d in details):
        return {key: [{name: np.ascontiguousarray(a[i : i + 1]) for name, a in arrays.items()} for i in range(count)]}
    return {key: [arrays]}


CONVERTER = TFLiteConverter()
