"""Full-integer calibration that holds: activation ranges by method, and bias correction of int8 weights (TFLite).

The converters' own options come first: ai-edge-quantizer's calibrator (``moving-average``: its stock exponential
average of each sample's min/max) and onnxruntime's ``CalibrationMethod`` (MinMax, Percentile, Entropy) are used as
they are.  What a converter lacks is computed here from the fp32 artifact run on the calibration samples, and handed
back to the converter as its own range statistics (ai-edge-quantizer's QSVs):

- ``minmax``: the smallest and largest value over all calibration samples;
- ``percentile``: the 0.01th and 99.99th percentiles (zero kept inside the range);
- ``mse``: the range, each end shrunk from min/max, whose int8 rounding and clipping error (mean squared) is least;
- ``entropy``: the range whose int8 histogram is closest (KL divergence) to the float one.

Bias correction (Nagel et al. 2019, "Data-Free Quantization", with measured input means): an int8 weight tensor
``Wq`` differs from ``W``, and its layer's output mean moves by ``(Wq - W) E[x]``; subtracting that from the bias
of each convolution, depthwise convolution and fully connected layer, with ``E[x]`` measured on the calibration
samples, gives the quantized model the float model's output means back.  The weights are quantized as
ai-edge-quantizer does (symmetric, 127 levels, one scale per output channel or per tensor).

Float activations for int8-dynamic (:func:`float_activation_layers`): a dynamic-range layer quantizes its input
to int8 at run time, per tensor; where that loses the most, the layer can keep int8 weights (the same bytes) and
compute on float activations.  The fully connected and convolution layers whose multiply-accumulates fit the budget
(:data:`FLOAT_ACTIVATION_MACS` of the model's), at most :data:`FLOAT_ACTIVATION_TRIALS` of them ranked by their
inputs' peak-to-RMS ratio, are tried alone on the calibration samples, and the ones that regain the most cosine
are kept on float activations, best first, while the budget lasts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

METHODS = ("minmax", "moving-average", "percentile", "entropy", "mse")
PERCENTILE = 99.99
VALUES_PER_SAMPLE = 2048  # values kept per tensor and sample for percentile/mse/entropy ranges
BIAS_SAMPLES = 64
INT8_LEVELS = 255
_SHRINK = np.geomspace(0.02, 1.0, 48)  # scales of each end of the range tried by mse and entropy


@dataclass
class _Stats:
    low: float = np.inf
    high: float = -np.inf
    values: list[np.ndarray] | None = None

    def add(self, array: np.ndarray, rng: np.random.Generator) -> None:
        flat = array.ravel()
        self.low, self.high = min(self.low, float(flat.min())), max(self.high, float(flat.max()))
        if self.values is not None:
            keep = flat if flat.size <= VALUES_PER_SAMPLE else rng.choice(flat, VALUES_PER_SAMPLE, replace=False)
            self.values.append(keep.astype(np.float32))


def model_bytes(path: Path) -> bytearray:
    """A flatbuffer read into memory, for ai-edge-quantizer's readers (``read_model``, ``Quantizer``): given a path
    they map the file, and the mapping (with its descriptor) outlived the model read from it, two per build, which a
    process running many builds runs out of (tests/test_resources.py)."""
    return bytearray(path.read_bytes())


def _preserving_interpreter(base: Path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(base), experimental_preserve_all_tensors=True, num_threads=1)


def run_preserving(base: Path, inputs: Mapping[str, np.ndarray], names: Iterable[str], visit) -> None:
    """Run ``base`` one sample at a time (inputs in the interpreter's positional order) and call
    ``visit(name, array)`` for each tensor in ``names`` after each run."""
    interpreter = _preserving_interpreter(base)
    details = interpreter.get_input_details()
    arrays = list(inputs.values())
    interpreter.allocate_tensors()
    index = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    wanted = [n for n in names if n in index]
    count = len(arrays[0])
    for i in range(count):
        for detail, array in zip(details, arrays):
            row = np.ascontiguousarray(array[i : i + 1], dtype=detail["dtype"])
            if tuple(detail["shape"]) != row.shape:
                interpreter.resize_tensor_input(detail["index"], row.shape)
                interpreter.allocate_tensors()
                details = interpreter.get_input_details()
            interpreter.set_tensor(detail["index"], row)
        interpreter.invoke()
        for name in wanted:
            visit(name, interpreter.get_tensor(index[name]))


def statistics(base: Path, inputs: Mapping[str, np.ndarray], names: Iterable[str], values: bool = True) -> dict:
    """Per activation tensor of ``base`` in ``names``: min, max and (with ``values``) a sample of its values over
    ``inputs``, for :func:`ranges`."""
    rng = np.random.default_rng(0)
    stats = {name: _Stats(values=[] if values else None) for name in names}
    run_preserving(base, inputs, stats, lambda name, array: stats[name].add(array, rng))
    return stats


def ranges(qsvs: Mapping[str, dict], stats: Mapping[str, _Stats], method: str) -> dict:
    """``qsvs`` (ai-edge-quantizer's calibration result) with each activation tensor's min/max replaced by the
    ``method``'s range from ``stats`` (:func:`statistics`); ``moving-average`` returns them as they are."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(METHODS)}")
    if method == "moving-average":
        return dict(qsvs)
    out = dict(qsvs)
    for name, stat in stats.items():
        if name not in qsvs or not np.isfinite(stat.low):
            continue  # not a tensor the interpreter keeps (e.g. a constant): leave the converter's figure
        low, high = _range(stat, method)
        old = qsvs[name]
        out[name] = {
            **old,
            "min": np.full(np.shape(old["min"]), low, dtype=np.float32),
            "max": np.full(np.shape(old["max"]), high, dtype=np.float32),
        }
    return out


def activation_ranges(base: Path, inputs: Mapping[str, np.ndarray], qsvs: Mapping[str, dict], method: str) -> dict:
    """:func:`ranges` of ``method`` from the statistics of ``inputs`` run through ``base``."""
    if method == "moving-average":
        return dict(qsvs)
    return ranges(qsvs, statistics(base, inputs, qsvs, values=method != "minmax"), method)


def _range(stat: _Stats, method: str) -> tuple[float, float]:
    low, high = min(stat.low, 0.0), max(stat.high, 0.0)
    if method == "minmax" or not stat.values or high - low <= 0:
        return low, high
    values = np.concatenate(stat.values).astype(np.float64)
    if method == "percentile":
        lo, hi = np.percentile(values, [100 - PERCENTILE, PERCENTILE])
        return min(float(lo), 0.0), max(float(hi), 0.0)
    for _ in range(2):  # coordinate descent: the upper end given the lower, then the lower given the upper
        high = _best(values, [(low, s * high) for s in _SHRINK], method)[1] if high > 0 else high
        low = _best(values, [(s * low, high) for s in _SHRINK], method)[0] if low < 0 else low
    return float(low), float(high)


def _best(values: np.ndarray, options: list[tuple[float, float]], method: str) -> tuple[float, float]:
    errors = [_error(values, lo, hi, method) for lo, hi in options]
    return options[int(np.argmin(errors))]


def fake_quantize(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` rounded to the 256 levels of an asymmetric int8 range [low, high] and clipped to it."""
    scale = max(high - low, 1e-12) / INT8_LEVELS
    zero = np.round(-low / scale)
    return (np.clip(np.round(values / scale) + zero, 0, INT8_LEVELS) - zero) * scale


def _error(values: np.ndarray, low: float, high: float, method: str) -> float:
    if method == "mse":
        return float(np.mean((values - fake_quantize(values, low, high)) ** 2))
    return _kl(values, low, high)


def _kl(values: np.ndarray, low: float, high: float, bins: int = 8192) -> float:
    """TensorRT's entropy calibration, for an asymmetric range: KL(P || Q) where P is the histogram of ``values``
    (fixed bins over their whole span) inside [low, high], with the mass outside folded into the edge bins, and Q
    is P merged into int8's 255 steps and spread back over the bins each step covers.  Ranges of fewer bins than
    steps are not compared."""
    edges = np.linspace(values.min(), values.max(), bins + 1)
    histogram = np.histogram(values, edges)[0].astype(np.float64)
    first = int(np.clip(np.searchsorted(edges, low, side="right") - 1, 0, bins - 1))
    last = int(np.clip(np.searchsorted(edges, high, side="left"), first + 1, bins))
    if last - first < INT8_LEVELS:
        return float("inf")  # narrower than int8's steps: every bin its own level, nothing to compare (as TensorRT)
    p = histogram[first:last].copy()
    p[0] += histogram[:first].sum()
    p[-1] += histogram[last:].sum()
    q = np.zeros_like(p)
    for group in np.array_split(np.arange(len(p)), min(INT8_LEVELS, len(p))):
        filled = group[p[group] > 0]
        if len(filled):
            q[filled] = p[group].sum() / len(filled)
    p, q = p / p.sum(), q / max(q.sum(), 1e-30)
    inside = p > 0
    return float(np.sum(p[inside] * np.log(p[inside] / np.maximum(q[inside], 1e-30))))


# --- bias correction ---------------------------------------------------------------------------------------

_CORRECTED_OPS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}  # op -> weight's output-channel axis


@dataclass(frozen=True)
class _Target:
    op: str
    scope: str  # ai-edge-quantizer's op scope (compressor.mixed_precision.Layer.scope)
    input_name: str
    weight: int  # tensor indices in subgraph 0
    bias: int


def _targets(model) -> list[_Target]:
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    subgraph = model.subgraphs[0]
    targets = []
    for op in subgraph.operators:
        name = fb.TFL_OP_CODE_TO_NAME.get(model.operatorCodes[op.opcodeIndex].builtinCode)
        name = str(getattr(name, "value", name))
        if name not in _CORRECTED_OPS or len(op.inputs) < 3 or min(op.inputs[:3]) < 0:
            continue
        weight, bias = subgraph.tensors[op.inputs[1]], subgraph.tensors[op.inputs[2]]
        w, b = fb.get_tensor_data(weight, model.buffers), fb.get_tensor_data(bias, model.buffers)
        if w is None or b is None or w.dtype != np.float32 or b.dtype != np.float32:
            continue
        source = subgraph.tensors[op.inputs[0]]
        scope = fb.get_op_scope(op, subgraph.tensors)
        targets.append(_Target(name, scope, fb.get_tensor_name(source), int(op.inputs[1]), int(op.inputs[2])))
    return targets


def buffer_users(model) -> dict[int, int]:
    """How many tensors of a read flatbuffer ``model`` (all subgraphs) use each buffer."""
    users: dict[int, int] = {}
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            users[tensor.buffer] = users.get(tensor.buffer, 0) + 1
    return users


def quantize_weights(weights: np.ndarray, axis: int | None, levels: int = 127) -> np.ndarray:
    """Symmetric int8 fake quantization (``levels`` each side of zero: 127, or 64 for onnxruntime's reduced range),
    one scale per slice along ``axis`` (None: per tensor)."""
    reduce = tuple(i for i in range(weights.ndim) if i != axis) if axis is not None else None
    peak = np.max(np.abs(weights), axis=reduce, keepdims=True)
    scale = np.where(peak > 0, peak / levels, 1.0)
    return np.clip(np.round(weights / scale), -levels, levels) * scale


def _shift(op: str, error: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The output mean's change per output channel for a weight error ``error`` and per-channel input mean."""
    if op == "FULLY_CONNECTED":  # [O, I]
        return error @ mean
    if op == "CONV_2D":  # [O, H, W, I]
        return np.einsum("ohwi,i->o", error, mean)
    channels = error.shape[3]  # DEPTHWISE_CONV_2D: [1, H, W, I * multiplier]
    multiplier = max(channels // max(len(mean), 1), 1)
    return error[0].sum(axis=(0, 1)) * np.repeat(mean, multiplier)[:channels]


def input_means(base: Path, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per input tensor of each layer :func:`correct_biases` corrects: its mean per channel (last axis) over the
    first :data:`BIAS_SAMPLES` of ``inputs``."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}

    def visit(name: str, array: np.ndarray) -> None:
        flat = array.reshape(-1, array.shape[-1]).astype(np.float64)
        sums[name] = sums.get(name, 0.0) + flat.mean(axis=0)
        counts[name] = counts.get(name, 0) + 1

    taken = {k: v[:BIAS_SAMPLES] for k, v in inputs.items()}
    run_preserving(base, taken, {t.input_name for t in _targets(fb.read_model(model_bytes(base)))}, visit)
    return {name: total / counts[name] for name, total in sums.items()}


def correct_biases(
    base: Path,
    out: Path,
    inputs: Mapping[str, np.ndarray] | None = None,
    per_tensor: bool = False,
    means: Mapping[str, np.ndarray] | None = None,
    skip: frozenset[str] = frozenset(),
) -> int:
    """Write ``base`` to ``out`` with each float convolution's and fully connected layer's bias corrected for the
    error of its int8 weights (per output channel, or per tensor with ``per_tensor``; depthwise kernels always per
    channel, as the converter keeps them), from the input ``means`` (:func:`input_means` of ``inputs``).  Layers whose
    scope is in ``skip`` (kept in float) are left alone.  Returns how many layers were corrected."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    if means is None:
        means = input_means(base, inputs or {})
    model = fb.read_model(model_bytes(base))
    subgraph, corrected = model.subgraphs[0], 0
    users = buffer_users(model)
    for target in _targets(model):
        mean = means.get(target.input_name)
        if mean is None or target.scope in skip:
            continue
        weight_tensor, bias_tensor = subgraph.tensors[target.weight], subgraph.tensors[target.bias]
        weights = fb.get_tensor_data(weight_tensor, model.buffers).astype(np.float64)
        bias = fb.get_tensor_data(bias_tensor, model.buffers).astype(np.float64)
        axis = None if per_tensor and target.op != "DEPTHWISE_CONV_2D" else _CORRECTED_OPS[target.op]
        in_channels = weights.shape[-1] if target.op != "DEPTHWISE_CONV_2D" else len(mean)
        if len(mean) != in_channels:
            continue  # an input laid out otherwise than the kernel expects: leave the layer alone
        shift = _shift(target.op, quantize_weights(weights, axis) - weights, mean)
        if shift.shape != bias.shape:
            continue
        data = np.frombuffer((bias - shift).astype(np.float32).tobytes(), dtype=np.uint8)
        if users.get(bias_tensor.buffer, 0) == 1:
            model.buffers[bias_tensor.buffer].data = data
        else:  # a constant buffer shared with other tensors: this bias gets one of its own
            model.buffers.append(schema.BufferT(data=data))
            bias_tensor.buffer = len(model.buffers) - 1
        corrected += 1
    flatbuffer_utils.write_model(model, str(out))
    return corrected


# --- choosing the method -----------------------------------------------------------------------------------

AUTO_METHODS = ("moving-average", "minmax", "percentile", "mse")  # entropy: offered, not tried by auto (slow)
AUTO_SAMPLES = 64
COSINE_TIE = 2e-5  # auto: mean cosines this close to the best are as good (then the smaller file wins)


def choose_ranges(
    base: Path, inputs: Mapping[str, np.ndarray], qsvs: Mapping[str, dict], quantize, scratch: Path
) -> tuple[dict, dict]:
    """The ranges of the :data:`AUTO_METHODS` method whose int8 model is closest to ``base`` on (at most
    :data:`AUTO_SAMPLES` of) ``inputs``, the calibration samples: top-1 agreement first (classifiers), then mean
    cosine.  ``quantize(qsvs, path)`` writes the int8 model for a set of ranges.  Returns the ranges and what was
    measured (``{"method": ..., "tried": {method: {"top1_agreement", "cosine_mean"}}}``)."""
    from compressor.probe import runtime_refusal

    stats = statistics(base, inputs, qsvs)
    score = Scorer(base, inputs)
    tried, best, best_score, best_ranges = {}, "", (-1.0, -2.0), dict(qsvs)
    for method in AUTO_METHODS:
        candidate = ranges(qsvs, stats, method)
        quantize(candidate, scratch)
        refusal = runtime_refusal(scratch, "tflite")  # LiteRT aborts the process on some full-integer models
        if refusal:
            tried[method] = {"error": refusal}
            continue
        tried[method], key = score(scratch)
        if key > best_score:
            best, best_score, best_ranges = method, key, candidate
    scratch.unlink(missing_ok=True)
    if not best:
        raise RuntimeError(f"no calibration method gives a model the runtime can run: {tried}")
    return best_ranges, {"method": best, "scored_on": score.count, "tried": tried}


FLOAT_ACTIVATION_MACS = 0.05  # share of the model's multiply-accumulates int8-dynamic may compute on float inputs
FLOAT_ACTIVATION_GAIN = 1e-5  # mean cosine a layer must regain on float activations to be kept so
FLOAT_ACTIVATION_TRIALS = 8  # layers tried at most: those whose inputs have the largest peak-to-RMS ratio
FLOAT_ACTIVATION_RECOVERY = 0.5  # share of int8-dynamic's loss (top-1 or cosine) float layers must remove to stay
RANK_SAMPLES = 16
_MAC_OPS = {"FULLY_CONNECTED", "CONV_2D"}


def mac_layers(path: Path) -> dict[str, tuple[int, str]]:
    """Each fully connected and convolution layer of a static-shape TFLite model, by ai-edge-quantizer op scope:
    its multiply-accumulates (output elements times the weights each one reads) and its input tensor's name."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    model = fb.read_model(model_bytes(path))
    layers = {}
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            name = fb.TFL_OP_CODE_TO_NAME.get(model.operatorCodes[op.opcodeIndex].builtinCode)
            if str(getattr(name, "value", name)) not in _MAC_OPS or len(op.inputs) < 2 or min(op.inputs[:2]) < 0:
                continue
            weight, output = subgraph.tensors[op.inputs[1]], subgraph.tensors[op.outputs[0]]
            macs = int(np.prod(output.shape)) * int(np.prod(weight.shape[1:]))
            layers[fb.get_op_scope(op, subgraph.tensors)] = (macs, fb.get_tensor_name(subgraph.tensors[op.inputs[0]]))
    return layers


def peak_to_rms(base: Path, inputs: Mapping[str, np.ndarray], names: Iterable[str]) -> dict[str, float]:
    """Per tensor in ``names``: its largest magnitude over its root mean square, on the first :data:`RANK_SAMPLES`
    of ``inputs`` (how much one int8 scale per tensor costs its typical values)."""
    peaks: dict[str, float] = {}
    squares: dict[str, list[float]] = {}

    def visit(name: str, array: np.ndarray) -> None:
        values = np.abs(array.astype(np.float64))
        peaks[name] = max(peaks.get(name, 0.0), float(values.max(initial=0.0)))
        squares.setdefault(name, []).append(float((values * values).mean()) if values.size else 0.0)

    run_preserving(base, {k: v[:RANK_SAMPLES] for k, v in inputs.items()}, names, visit)
    return {name: peaks[name] / max(float(np.sqrt(np.mean(squares[name]))), 1e-12) for name in peaks}


def float_activation_layers(
    base: Path, inputs: Mapping[str, np.ndarray], quantize, scratch: Path
) -> tuple[list[str], dict]:
    """The op scopes of the layers int8-dynamic should run on float activations, and what was measured.

    ``quantize(scopes, path)`` writes the int8-dynamic model with ``scopes`` on float activations; closeness to the
    fp32 ``base`` is :class:`Scorer`'s on the calibration ``inputs``.  The layers whose MACs fit the budget
    (:data:`FLOAT_ACTIVATION_MACS` of the model's) are tried alone, at most :data:`FLOAT_ACTIVATION_TRIALS` of them
    (those whose inputs have the largest peak-to-RMS ratio, :func:`peak_to_rms`); they are then kept by the cosine
    each regains, best first, while the budget lasts, and the set is kept only when it removes at least
    :data:`FLOAT_ACTIVATION_RECOVERY` of int8-dynamic's loss (of top-1 agreement or of mean cosine): a layer on
    float activations costs run time (all-MiniLM-L6-v2 in bench/versus.py: 3 float layers, 4 % of the MACs, made
    XNNPACK's p50 10 % slower for a fifth of the loss), so a small gain is not worth it.  When layers are returned,
    ``scratch`` holds that model; otherwise it is removed."""
    layers = mac_layers(base)
    total = sum(macs for macs, _ in layers.values())
    budget = FLOAT_ACTIVATION_MACS * total
    affordable = [scope for scope, (macs, _) in layers.items() if 0 < macs <= budget]
    if len(affordable) > FLOAT_ACTIVATION_TRIALS:
        ratios = peak_to_rms(base, inputs, {layers[scope][1] for scope in affordable})
        affordable = sorted(affordable, key=lambda scope: -ratios.get(layers[scope][1], 0.0))
        affordable = affordable[:FLOAT_ACTIVATION_TRIALS]
    score = Scorer(base, inputs)
    quantize([], scratch)
    plain_figures, plain = score(scratch)
    gains = []
    for scope in affordable:
        quantize([scope], scratch)
        _, key = score(scratch)
        if key[0] >= plain[0] and key[1] - plain[1] >= FLOAT_ACTIVATION_GAIN:
            gains.append((key[1] - plain[1], scope))
    chosen, spent = [], 0
    for _, scope in sorted(gains, reverse=True):
        if spent + layers[scope][0] <= budget:
            chosen.append(scope)
            spent += layers[scope][0]
    notes: dict = {"layers": [], "tried": len(affordable), "scored_on": score.count, "without": plain_figures}
    if chosen:
        quantize(chosen, scratch)
        figures, key = score(scratch)
        recovered = max((k - p) / max(1.0 - p, 1e-12) for k, p in zip(key, plain))  # of top-1 or of cosine
        notes["recovered"] = round(recovered, 4)
        if key[0] >= plain[0] and recovered >= FLOAT_ACTIVATION_RECOVERY:
            notes.update(layers=chosen, macs_share=round(spent / max(total, 1), 4))
            notes["with"] = figures
            return chosen, notes
    scratch.unlink(missing_ok=True)
    return [], notes


class Scorer:
    """How close a quantized flatbuffer is to ``base`` on (at most :data:`AUTO_SAMPLES` of) the calibration
    ``inputs``: top-1 agreement first (classifiers), then mean cosine.  Calling it on a path returns the figures (for
    the report) and a key that sorts the closer model last."""

    def __init__(self, base: Path, inputs: Mapping[str, np.ndarray]) -> None:
        from compressor.runtimes import open_artifact

        self.taken = {k: v[:AUTO_SAMPLES] for k, v in inputs.items()}
        self.reference = open_artifact(base, "tflite").run(self.taken)
        self.count = len(next(iter(self.taken.values())))

    def __call__(self, path: Path) -> tuple[dict, tuple[float, float]]:
        from compressor.metrics import compare
        from compressor.runtimes import open_artifact

        metrics = compare(self.reference, open_artifact(path, "tflite").run(self.taken), None)
        top1 = metrics["top1_agreement"]
        figures = {"top1_agreement": top1, "cosine_mean": round(metrics["cosine_mean"], 6)}
        return figures, (top1 if top1 is not None else 0.0, metrics["cosine_mean"])
