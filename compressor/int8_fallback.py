"""Accuracy-aware int8 fallback: when a full-integer TFLite model misses the gate, keep its most sensitive layers in
float until it passes (the library behind ``passes/fallback_int8_pass.py``).

Everything is measured on the calibration samples, never on the validation ones: the full-integer model is rebuilt
as it was made (the same fp32 flatbuffer, bias-corrected or not, the same activation ranges), then each weighted
layer (convolution, depthwise convolution, fully connected, embedding lookup) is kept in float alone, with all else
int8, and the loss of mean cosine similarity it removes is its sensitivity.  Layers are then floated most sensitive
first, and a binary search finds the fewest that pass the gate (the caller's fitting gate: the build's gate with a
margin, ``compressor.holdout.fitting_gate``) (about log2 of the layer count further trials).  The
result is a ``mixed-int8`` model: int8 weights and activations everywhere but those layers, which ai-edge-quantizer
wraps in DEQUANTIZE/QUANTIZE.  Integer-only targets cannot run float layers; for them :func:`sensitivities` alone
says what was lost where.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compressor import calibration
from compressor.calibration import model_bytes
from compressor.converters.tflite import recipe, signature_samples
from compressor.data import SampleData
from compressor.metrics import Gate, compare
from compressor.mixed_precision import Layer, weighted_layers

__all__ = ["Fallback", "Int8Model", "search", "weighted_layers"]
from compressor.native_output import captured
from compressor.profiles import Format, Precision
from compressor.runtimes import open_artifact

SENSITIVITY_SAMPLES = 64
REPORTED_LAYERS = 10


@dataclass(frozen=True)
class Fallback:
    """What the search found: per-layer sensitivity (loss of cosine removed by floating it), the float layers
    chosen, and whether the model with them passed the gate on the calibration samples."""

    sensitivity: dict[Layer, float]
    floated: tuple[Layer, ...]
    passed: bool
    trials: int

    def technique(self) -> dict:
        ranked = sorted(self.sensitivity.items(), key=lambda item: -item[1])
        return {
            "float_layers": [
                {"scope": layer.scope, "op": layer.op, "shape": list(layer.shape)} for layer in self.floated
            ],
            "passed_on_calibration": self.passed,
            "most_sensitive": [
                {"scope": layer.scope, "op": layer.op, "cosine_loss_removed": round(loss, 6)}
                for layer, loss in ranked[:REPORTED_LAYERS]
            ],
            "trials": self.trials,
        }


class Int8Model:
    """Rebuilds full-integer TFLite models of ``base`` with some layers kept in float.

    ``notes`` are the int8-full artifact's own (``technique["int8"]``): bias correction and the calibration method
    it used are applied again, so that with no layer floated the model is the one that missed the gate.
    """

    def __init__(self, base: Path, data: SampleData, notes: Mapping, workdir: Path, per_tensor: bool = False):
        from ai_edge_quantizer import quantizer

        self.workdir, self.per_tensor = workdir, per_tensor
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "converter.log"
        self.original = base
        self.means = calibration.input_means(base, data.inputs) if "bias_correction" in notes else None
        self.base = self._base(())
        method = str((notes.get("calibration") or {}).get("method", "moving-average"))
        with captured(self.log):
            engine = quantizer.Quantizer(model_bytes(self.base), recipe(Precision.INT8_FULL, per_tensor))
            samples = signature_samples(self.base, data.inputs)
            self.qsvs = calibration.activation_ranges(self.base, data.inputs, engine.calibrate(samples), method)
        self.method = method

    def _base(self, floated: Sequence[Layer]) -> Path:
        """The fp32 flatbuffer to quantize: bias-corrected (when the artifact was) except for floated layers,
        whose float weights have no error to correct."""
        if self.means is None:
            return self.original
        out = self.workdir / "fp32-bias-corrected.tflite"
        calibration.correct_biases(
            self.original,
            out,
            per_tensor=self.per_tensor,
            means=self.means,
            skip=frozenset(layer.scope for layer in floated),
        )
        return out

    def write(self, floated: Sequence[Layer], out: Path) -> None:
        """The int8 model with ``floated`` layers left in float, at ``out``."""
        from ai_edge_quantizer import qtyping, quantizer
        from ai_edge_quantizer.algorithm_manager import AlgorithmName

        plan = recipe(Precision.INT8_FULL, self.per_tensor)
        for layer in floated:  # later entries win over the ".*" int8 one
            plan.append(
                {
                    "regex": f"^{re.escape(layer.scope)}$",
                    "operation": qtyping.TFLOperationName.ALL_SUPPORTED,
                    "algorithm_key": AlgorithmName.NO_QUANTIZE,
                    "op_config": {},
                }
            )
        base = self._base(floated)
        with captured(self.log):
            engine = quantizer.Quantizer(model_bytes(base), plan)
            engine.quantize(self.qsvs, enable_progress_report=False).export_model(str(out), overwrite=True)


def search(
    model: Int8Model,
    data: SampleData,
    reference: list[np.ndarray],
    gate: Gate,
    out: Path,
    stage=None,
    measure_only: bool = False,
) -> Fallback:
    """Sensitivities of ``model``'s weighted layers on ``data`` (at most :data:`SENSITIVITY_SAMPLES`) against the
    original model's ``reference`` outputs, then (unless ``measure_only``) the fewest most-sensitive layers in
    float that pass ``gate`` there; the chosen model is written to ``out``."""
    taken = data.take(0, min(len(data), SENSITIVITY_SAMPLES))
    ref = [r[: len(taken)] for r in reference]
    scratch = model.workdir / "fallback-trial.tflite"
    trials = 0

    def measure(floated: Sequence[Layer]) -> dict:
        nonlocal trials
        trials += 1
        model.write(floated, scratch)
        return compare(ref, open_artifact(scratch, Format.TFLITE.value).run(taken.inputs), taken.labels)

    layers = weighted_layers(model.base)
    baseline = 1.0 - measure(())["cosine_mean"]
    sensitivity = {}
    for layer in layers:
        sensitivity[layer] = baseline - (1.0 - measure((layer,))["cosine_mean"])
        if stage is not None:
            stage.advance(f"{layer.op} {sensitivity[layer]:+.4f}")
    order = sorted(layers, key=lambda layer: -sensitivity[layer])
    if measure_only:
        return Fallback(sensitivity, (), False, trials)
    low, high = 1, len(order)
    if not gate.passes(measure(order)):
        model.write(order, out)
        return Fallback(sensitivity, tuple(order), False, trials)
    while low < high:  # invariant: floating order[:high] passes
        middle = (low + high) // 2
        if gate.passes(measure(order[:middle])):
            high = middle
        else:
            low = middle + 1
        if stage is not None:
            stage.advance(f"{high} layers in float")
    model.write(order[:high], out)
    scratch.unlink(missing_ok=True)
    return Fallback(sensitivity, tuple(order[:high]), True, trials)
