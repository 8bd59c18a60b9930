"""Mixed precision by sensitivity: per-layer weight precision chosen on the user's data (the library behind
``passes/quantize_mixed_pass.py``).
Mixed precision by sensitivity: per-layer weight precision chosen on the user's data.

Each weighted TFLite op (fully connected, convolutions, embedding lookups) gets a ladder of weight
precisions, smallest first, limited to what ai-edge-quantizer's dynamic-range policy allows for the op:
int4 per output channel; int4 in blocks of 64 and of 32 weights along the input dimension (one fp16
scale per block; fully connected and embedding lookups whose input dimension the block divides); int8
per output channel; fp16. Integer layers are dynamic range (integer weights, float
activation tensors quantized on the fly inside the kernel), as the int8-dynamic artifacts are; fp16
weights are dequantized to float by a DEQUANTIZE op. Fully connected layers are quantized with
ai-edge-quantizer's OSCAR algorithm (per input channel scales from the activations' second moments,
folded into the weights and undone by one MUL on the op's input, then activation-weighted clipping),
calibrated once on the data; other ops use min-max scales. On all-MiniLM-L6-v2 blockwise int4 loses
less than half the cosine of per-channel int4 and OSCAR about a third less again, at the same size.
Blockwise layers run in XNNPACK (LiteRT's builtin kernels give the same outputs far slower); on an x86
AVX2 host its blockwise int4 fully connected kernels are no faster than fp32, about half the speed of
per-channel int4.

Search, bounded by the layer count: the smallest plan (every layer at the bottom of its ladder) is tried
first, and kept when it passes the gate (one trial). Otherwise each layer alone is quantized to each integer
rung of its ladder (at most four trials per layer); the output's loss of cosine similarity against the original model is
the rung's sensitivity and the file's change in size its bytes (fp16: no loss, two bytes less per weight,
not measured). On each layer's lower convex hull of (bytes, loss), the step from one rung to the next
removes loss at some rate per byte added; all steps of all layers are ordered by that rate, best first,
and a binary search finds the shortest prefix of that order whose model passes the accuracy gate
(about log2 of the step count further trials).
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compressor.calibration import model_bytes
from compressor.converters.tflite import signature_samples
from compressor.data import SampleData
from compressor.errors import TechniqueNotApplicableError
from compressor.metrics import Gate, compare
from compressor.native_output import captured
from compressor.options import CompressOptions
from compressor.profiles import Format, Precision, Profile
from compressor.progress import Progress
from compressor.runtimes import HOST_THREADS, open_artifact

PRECISION = Precision.INT8_DYNAMIC  # integer weights, float activation tensors: what the profile must accept
SENSITIVITY_SAMPLES = 64
INT4_BLOCKS = (64, 32)  # block sizes offered, larger first (fewer scales, smaller file)
ACTIVATION_AWARE_OPS = frozenset({"FULLY_CONNECTED"})  # the ops ai-edge-quantizer 0.10's OSCAR quantizes


@dataclass(frozen=True)
class Layer:
    scope: str  # ai-edge-quantizer's op scope: the op's output tensor names
    op: str  # TFLite builtin name, e.g. FULLY_CONNECTED
    shape: tuple[int, ...]  # the weight tensor's shape

    @property
    def weights(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class Rung:
    """One weight precision: ``int4-b32`` (int4, blocks of 32), ``int4`` (per channel), ``int8``, ``fp16``."""

    name: str
    bits: int
    block: int = 0  # 0: one scale per output channel

    def configure(self, manager, layer: Layer, activation_aware: bool) -> None:
        """Add this rung for ``layer`` to an ai-edge-quantizer RecipeManager."""
        from ai_edge_quantizer import qtyping
        from ai_edge_quantizer.algorithm_manager import AlgorithmName

        where = {"regex": f"^{re.escape(layer.scope)}$", "operation_name": qtyping.TFLOperationName.ALL_SUPPORTED}
        if self.bits == 16:
            manager.add_weight_only_config(**where, num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
            return
        granularity = qtyping.QuantGranularity(f"BLOCKWISE_{self.block}" if self.block else "CHANNELWISE")
        algorithm = AlgorithmName.OSCAR if activation_aware else AlgorithmName.MIN_MAX_UNIFORM_QUANT
        manager.add_dynamic_config(**where, num_bits=self.bits, granularity=granularity, algorithm_key=algorithm)


FP16 = Rung("fp16", 16)


def accepted(profile: Profile, options: CompressOptions) -> bool:
    """Whether ``profile`` takes the mixed candidate's TFLite int8-dynamic artifact with these options."""
    return (
        Format.TFLITE in profile.accepts.formats
        and PRECISION in profile.accepts.precisions
        and PRECISION in (options.precisions or tuple(Precision))
    )


def wanted(profile: Profile, options: CompressOptions) -> bool:
    """Asked for (``--mixed-precision``), or by default where selection optimizes size and the profile takes it:
    the smallest plan that passes is at most the size of the bare tool's uniform int4."""
    objective = options.select or profile.selection.objective
    return options.mixed_precision or (objective == "size" and accepted(profile, options))


def technique(search: Search, plan: Mapping[Layer, Rung]) -> dict:
    """What report.json says about the plan: per-layer precision, counts, measured losses, trials."""
    names = [rung.name for rung in sorted({r for rungs in search.ladders.values() for r in rungs}, key=_rung_order)]
    return {
        "precision": {layer.scope: rung.name for layer, rung in plan.items()},
        "bits": {layer.scope: rung.bits for layer, rung in plan.items()},
        "counts": {name: sum(1 for rung in plan.values() if rung.name == name) for name in names},
        "sensitivity_1_minus_cosine": {  # measured rungs only (fp16 is taken as lossless)
            layer.scope: {rung.name: round(loss, 6) for rung, (_, loss) in effects.items() if rung != FP16}
            for layer, effects in search.effects.items()
        },
        "activation_aware": search.calibration is not None,  # OSCAR scales on fully connected layers
        "uniform_int8": search.uniform_int8,  # no mixed plan beat plain int8 everywhere: that plan was kept
        "trials": search.trials,
    }


def weighted_layers(path: Path) -> list[Layer]:
    """The ops of a TFLite model whose constant weights ai-edge-quantizer can quantize."""
    return list(layer_weights(path))


def layer_weights(path: Path) -> dict[Layer, np.ndarray]:
    """:func:`weighted_layers` with each op's weight tensor (float32, in the layer's shape), in graph order."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    model = fb.read_model(str(path))
    layers = {}
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            name = fb.TFL_OP_CODE_TO_NAME.get(model.operatorCodes[op.opcodeIndex].builtinCode)
            if name not in fb.TFL_OP_TO_WEIGHT_QUANTIZED_DIM or len(op.inputs) < 2 or op.inputs[1] < 0:
                continue
            weight = subgraph.tensors[op.inputs[1]]
            data = fb.get_tensor_data(weight, model.buffers)
            if data is None:
                continue
            shape = tuple(int(d) for d in weight.shape)
            layer = Layer(fb.get_op_scope(op, subgraph.tensors), str(name.value), shape)
            layers[layer] = np.asarray(data, dtype=np.float32).reshape(shape)
    return layers


def ladder(layer: Layer) -> tuple[Rung, ...]:
    """The precisions ai-edge-quantizer's dynamic-range policy allows for ``layer``, smallest first."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    ops = _policy_ops()
    blocked_dim = {str(op.value): dim for op, dim in fb.TFL_OP_TO_BLOCKWISE_WEIGHT_QUANTIZED_DIM.items()}.get(layer.op)
    rungs = []
    if layer.op in ops["dynamic_wi4_afp32"]:
        rungs.append(Rung("int4", 4))  # what the bare tool's dynamic_wi4_afp32 recipe makes: the smallest
    if layer.op in ops["dynamic_wi4_afp32_blockwise"] and blocked_dim is not None and blocked_dim < len(layer.shape):
        rungs += [Rung(f"int4-b{b}", 4, b) for b in INT4_BLOCKS if layer.shape[blocked_dim] % b == 0]
    if layer.op in ops["dynamic_wi8_afp32"]:
        rungs.append(Rung("int8", 8))
    return (*rungs, FP16)


def quantize(base: Path, plan: Mapping[Layer, Rung], out: Path, calibration: dict | None = None) -> None:
    """Write ``base`` with each planned layer's weights at its rung to ``out``.

    ``calibration`` (from :func:`calibrate`) turns on OSCAR for the fully connected layers' integer rungs.
    """
    from ai_edge_quantizer import quantizer, recipe_manager

    manager = recipe_manager.RecipeManager()
    for layer, rung in plan.items():
        rung.configure(manager, layer, activation_aware=calibration is not None and layer.op in ACTIVATION_AWARE_OPS)
    engine = quantizer.Quantizer(model_bytes(base), manager.get_quantization_recipe())
    engine.quantize(calibration, enable_progress_report=False).export_model(str(out), overwrite=True)


def calibrate(base: Path, layers: Sequence[Layer], inputs: Mapping[str, np.ndarray]) -> dict | None:
    """ai-edge-quantizer's activation statistics for OSCAR, from ``inputs`` run through ``base``.

    ``None`` when no layer is one OSCAR quantizes or the model has no signature to calibrate through.
    """
    from ai_edge_quantizer import calibrator, recipe_manager

    aware = [layer for layer in layers if layer.op in ACTIVATION_AWARE_OPS]
    samples = signature_samples(base, dict(inputs))
    if not aware or samples is None:
        return None
    manager = recipe_manager.RecipeManager()
    for layer in aware:
        Rung("int8", 8).configure(manager, layer, activation_aware=True)
    engine = calibrator.Calibrator(base.read_bytes(), num_threads=HOST_THREADS)
    engine.calibrate(samples, manager)
    return engine.get_model_qsvs()


@functools.cache
def _policy_ops() -> dict[str, frozenset[str]]:
    from ai_edge_quantizer import default_policy

    ops_per_config = json.loads(default_policy.DEFAULT_JSON_POLICY)["ops_per_config"]
    return {name: frozenset(ops) for name, ops in ops_per_config.items()}


def _rung_order(rung: Rung) -> tuple[int, bool, int]:
    return rung.bits, rung.block != 0, -rung.block  # per channel, then larger blocks first


@dataclass(frozen=True)
class _Step:
    """Raising one layer from one rung of its hull to the next: loss removed per byte added."""

    rate: float
    layer: Layer
    rung: Rung


def upgrade_steps(effects: Mapping[Layer, Mapping[Rung, tuple[int, float]]]) -> tuple[dict[Layer, Rung], list[_Step]]:
    """The smallest plan, and the steps up each layer's lower convex hull of (bytes, loss), best rate first."""
    start, steps = {}, []
    for index, (layer, by_rung) in enumerate(effects.items()):
        hull: list[tuple[int, float, Rung]] = []
        for rung, (size, loss) in sorted(by_rung.items(), key=lambda item: item[1]):
            if hull and loss >= hull[-1][1]:
                continue  # as big or bigger and no better
            while len(hull) >= 2 and _rate(hull[-2], hull[-1]) <= _rate(hull[-1], (size, loss, rung)):
                hull.pop()  # the middle rung is not on the lower hull
            hull.append((size, loss, rung))
        start[layer] = hull[0][2]
        for i, (low, high) in enumerate(itertools.pairwise(hull)):
            steps.append((_rate(low, high), index, i, _Step(_rate(low, high), layer, high[2])))
    return start, [step for *_, step in sorted(steps, key=lambda s: (-s[0], s[1], s[2]))]


def _rate(low: tuple[int, float, Rung], high: tuple[int, float, Rung]) -> float:
    return (low[1] - high[1]) / max(high[0] - low[0], 1)


class Search:
    """Quantize-and-measure trials over per-layer precision plans of the fp32 flatbuffer ``base``.

    ``data`` (at most :data:`SENSITIVITY_SAMPLES` are used) and ``reference``, the original model's outputs on
    those samples, measure each trial; ``gate`` says which plans pass; ``workdir`` holds the trial file and log.
    """

    def __init__(
        self, base: Path, data: SampleData, reference: list[np.ndarray], gate: Gate, workdir: Path, progress: Progress
    ) -> None:
        self.base, self.gate, self.workdir, self.progress, self.trials = base, gate, workdir, progress, 0
        self.data = data.take(0, min(len(data), SENSITIVITY_SAMPLES))
        self.reference = [r[: len(self.data)] for r in reference]
        self.layers = weighted_layers(base)
        if not self.layers:
            raise TechniqueNotApplicableError("mixed precision by sensitivity found no layers with weights to quantize")
        self.ladders = {layer: ladder(layer) for layer in self.layers}
        self.scratch = workdir / "mixed-trial.tflite"
        self.calibration: dict | None = None
        self.uniform_int8 = False
        self.effects: dict[Layer, dict[Rung, tuple[int, float]]] = {}  # per layer and rung: bytes added, loss

    def quantize(self, plan: Mapping[Layer, Rung], out: Path) -> None:
        with captured(self.workdir / "converter.log"):
            quantize(self.base, plan, out, self.calibration)

    def measure(self, plan: Mapping[Layer, Rung]) -> dict:
        self.trials += 1
        self.quantize(plan, self.scratch)
        outputs = open_artifact(self.scratch, Format.TFLITE.value).run(self.data.inputs)
        return compare(self.reference, outputs, self.data.labels)

    def passes(self, plan: Mapping[Layer, Rung]) -> bool:
        return self.gate.passes(self.measure(plan))

    def best_plan(self) -> dict[Layer, Rung]:
        """The shortest prefix of the upgrade order whose plan passes the gate (all at the top if none does)."""
        measured = sum(len(rungs) - 1 for rungs in self.ladders.values())
        stage = self.progress.stage("mixed precision", 3 + measured + measured.bit_length())
        with captured(self.workdir / "converter.log"):
            self.calibration = calibrate(self.base, self.layers, self.data.inputs)
        stage.advance("activation statistics" if self.calibration is not None else "min-max scales (no calibration)")
        smallest = {layer: rungs[0] for layer, rungs in self.ladders.items()}
        if self.passes(smallest):
            stage.advance("the smallest plan passes: no layer needs more precision")
            return self._smallest_form(smallest)  # no sensitivity measured: technique() reports none
        stage.advance("the smallest plan fails: measuring each layer's sensitivity")
        self._measure_effects(stage)
        start, steps = upgrade_steps(self.effects)

        def plan(count: int) -> dict[Layer, Rung]:
            chosen = dict(start)
            for step in steps[:count]:
                chosen[step.layer] = step.rung
            return chosen

        low, high = 0, len(steps)  # invariant once checked: plan(high) passes
        passes = self.passes(plan(high))
        stage.advance(f"all {len(steps)} precision steps up: {'passes' if passes else 'fails'}")
        if not passes:
            return plan(high)  # nothing passes: validation will say so
        while low < high:
            middle = (low + high) // 2
            if self.passes(plan(middle)):
                high = middle
            else:
                low = middle + 1
            stage.advance(f"{high} of {len(steps)} precision steps up")
        return self._smallest_form(plan(high))

    def _smallest_form(self, found: dict[Layer, Rung]) -> dict[Layer, Rung]:
        """``found``, or the smallest of two plain min-max forms (activation-aware scales off: ``self.calibration``
        None) that makes a smaller file and passes too: the same plan (OSCAR's per-input-channel MUL operations
        cost bytes, up to a tenth of a small model), and every layer at int8 (what uniform int8-dynamic is: the
        search walks one order of upgrades, and its first passing prefix can hold a wider layer that uniform int8
        does without)."""
        int8 = {
            layer: next((r for r in rungs if r.name == "int8"), found[layer]) for layer, rungs in self.ladders.items()
        }
        self.quantize(found, self.scratch)
        best, best_bytes, min_max = found, self.scratch.stat().st_size, False
        calibration, self.calibration = self.calibration, None
        forms = ([(found, False)] if calibration is not None else []) + [(int8, True)]
        for plan, uniform in forms:
            self.quantize(plan, self.scratch)
            if self.scratch.stat().st_size < best_bytes and self.passes(plan):
                best, best_bytes, self.uniform_int8, min_max = plan, self.scratch.stat().st_size, uniform, True
        if not min_max:
            self.calibration = calibration
        return best  # calibration stays off for the final quantization of a min-max form

    def _measure_effects(self, stage) -> None:
        base_bytes = self.base.stat().st_size
        for layer in self.layers:
            self.effects[layer] = {FP16: (-2 * layer.weights, 0.0)}  # fp16 casting: lossless enough, not measured
            for rung in self.ladders[layer][:-1]:
                loss = 1.0 - self.measure({layer: rung})["cosine_mean"]
                self.effects[layer][rung] = (self.scratch.stat().st_size - base_bytes, loss)
                stage.advance(f"sensitivity {layer.op} {rung.name} {loss:.4f}")
