"""Mixed precision by sensitivity: per-layer weight precision (int4 / int8 / fp16) chosen on the user's data.

Each weighted TFLite op (fully connected, convolutions, embedding lookups) is
quantized alone to int4 with ai-edge-quantizer and the output's cosine loss
against the original model is its sensitivity.  Layers are then raised from
int4, most sensitive per weight first, and a binary search finds the fewest
raised layers whose model passes the accuracy gate: first raising to int8,
then, if even all-int8 fails, to fp16.  Integer layers use dynamic-range
quantization (int4 / int8 weights, float activation tensors quantized on the
fly inside the kernel), as the int8-dynamic artifacts do, so the artifact runs
wherever those run and gets their integer kernels; weight-only integer layers
would be dequantized to float at run time and run no faster than fp32.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compressor.errors import TechniqueNotApplicableError
from compressor.metrics import compare, passes_gate
from compressor.native_output import captured
from compressor.passes import convert_tflite_pass
from compressor.profiles import Format, Precision
from compressor.runtimes import open_artifact
from compressor.state import BuildState, Candidate

PRECISION = Precision.INT8_DYNAMIC  # integer weights, float activation tensors: what the profile must accept
LOW, HIGH, FLOAT = 4, 8, 16
VARIANT = "mixed"
SENSITIVITY_SAMPLES = 64


@dataclass(frozen=True)
class Layer:
    scope: str  # ai-edge-quantizer's op scope: the op's output tensor names
    op: str
    weights: int  # number of weight elements


def run(state: BuildState) -> None:
    if Format.TFLITE not in state.profile.accepts.formats or PRECISION not in state.precisions_for(Format.TFLITE):
        raise TechniqueNotApplicableError(
            f"mixed precision by sensitivity makes TFLite models with integer weights and float activations, which "
            f"profile {state.profile.name!r} does not accept (with these options); drop mixed precision or choose a "
            "profile whose TFLite precisions include int8-dynamic"
        )
    base = state.workdir / "fp32-base.tflite"
    if not base.exists():
        with captured(state.workdir / "converter.log"):
            convert_tflite_pass.convert_fp32(state, base)
    search = _Search(state, base)
    plan, sensitivity = search.best_plan()
    candidate = Candidate(Format.TFLITE, PRECISION, state.workdir / "candidates" / f"{VARIANT}.tflite", variant=VARIANT)
    candidate.path.parent.mkdir(parents=True, exist_ok=True)
    search.quantize(plan, candidate.path)
    candidate.technique = {
        "mixed_precision": {
            "bits": {layer.scope: bits for layer, bits in plan.items()},
            "sensitivity_1_minus_cosine": {layer.scope: round(s, 6) for layer, s in sensitivity.items()},
            "counts": {str(b): sum(1 for v in plan.values() if v == b) for b in (LOW, HIGH, FLOAT)},
            "trials": search.trials,
        }
    }
    state.candidates.append(candidate)


def weighted_layers(path: Path) -> list[Layer]:
    """The ops of a TFLite model whose constant weights ai-edge-quantizer can quantize."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    model = fb.read_model(str(path))
    layers = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            name = fb.TFL_OP_CODE_TO_NAME.get(model.operatorCodes[op.opcodeIndex].builtinCode)
            if name not in fb.TFL_OP_TO_WEIGHT_QUANTIZED_DIM or len(op.inputs) < 2 or op.inputs[1] < 0:
                continue
            weight = subgraph.tensors[op.inputs[1]]
            if fb.get_tensor_data(weight, model.buffers) is None:
                continue
            layers.append(Layer(fb.get_op_scope(op, subgraph.tensors), str(name), int(np.prod(weight.shape))))
    return layers


class _Search:
    """Quantize-and-measure trials over per-layer bit plans, on a slice of the user's data."""

    def __init__(self, state: BuildState, base: Path) -> None:
        self.state, self.base, self.trials = state, base, 0
        self.data = state.data.take(0, min(len(state.data), SENSITIVITY_SAMPLES))
        self.reference = state.source.reference_runner().run(self.data.inputs)
        self.layers = weighted_layers(base)
        if not self.layers:
            raise TechniqueNotApplicableError("mixed precision by sensitivity found no layers with weights to quantize")
        self.scratch = state.workdir / "mixed-trial.tflite"

    def quantize(self, plan: dict[Layer, int], out: Path) -> None:
        from ai_edge_quantizer import qtyping, quantizer, recipe_manager

        manager = recipe_manager.RecipeManager()
        for layer, bits in plan.items():
            config = {"regex": f"^{re.escape(layer.scope)}$", "operation_name": qtyping.TFLOperationName.ALL_SUPPORTED}
            if bits == FLOAT:
                manager.add_weight_only_config(**config, num_bits=bits, algorithm_key="float_casting")
            else:
                manager.add_dynamic_config(**config, num_bits=bits)
        with captured(self.state.workdir / "converter.log"):
            engine = quantizer.Quantizer(str(self.base), manager.get_quantization_recipe())
            engine.quantize(None, enable_progress_report=False).export_model(str(out), overwrite=True)

    def measure(self, plan: dict[Layer, int]) -> dict:
        self.trials += 1
        self.quantize(plan, self.scratch)
        outputs = open_artifact(self.scratch, Format.TFLITE.value).run(self.data.inputs)
        return compare(self.reference, outputs, self.data.labels)

    def passes(self, plan: dict[Layer, int]) -> bool:
        options = self.state.options
        return passes_gate(self.measure(plan), options.max_accuracy_drop, options.min_cosine)

    def best_plan(self) -> tuple[dict[Layer, int], dict[Layer, float]]:
        """The smallest plan that passes the gate, and each layer's measured sensitivity."""
        stage = self.state.progress.stage("mixed precision", len(self.layers) + 2 * max(len(self.layers).bit_length(), 1))
        sensitivity = {}
        for layer in self.layers:
            sensitivity[layer] = 1.0 - self.measure({layer: LOW})["cosine_mean"]
            stage.advance(f"sensitivity {layer.op} {sensitivity[layer]:.4f}")
        ranked = sorted(self.layers, key=lambda l: sensitivity[l] / max(l.weights, 1), reverse=True)
        for raised in (HIGH, FLOAT):
            count = self._fewest_raised(ranked, raised, stage)
            if count is not None:
                return {l: (raised if i < count else LOW) for i, l in enumerate(ranked)}, sensitivity
        return {l: FLOAT for l in ranked}, sensitivity  # nothing passes: fp16 weights, validation will say so

    def _fewest_raised(self, ranked: list[Layer], raised: int, stage) -> int | None:
        def plan(count: int) -> dict[Layer, int]:
            return {l: (raised if i < count else LOW) for i, l in enumerate(ranked)}

        if not self.passes(plan(len(ranked))):
            return None
        low, high = 0, len(ranked)  # invariant: plan(high) passes
        while low < high:
            middle = (low + high) // 2
            if self.passes(plan(middle)):
                high = middle
            else:
                low = middle + 1
            stage.advance(f"int{raised} for {high} of {len(ranked)} layers")
        return high
