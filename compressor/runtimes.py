"""Run models and artifacts in their real runtimes behind one small interface.

Every runner takes float (or integer) arrays with a leading sample axis, keyed
by input name, and returns the outputs as float arrays in model order.  Runners
for artifacts with a fixed batch of one loop over samples; int8 model inputs and
outputs are (de)quantized with the artifact's own scale and zero point.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from compressor.batching import fixed_batch
from compressor.tensors import TensorSpec, is_whole, one_sample

HOST_THREADS = 1  # latency figures are single-threaded so runs on a 2-core host are comparable


class Runner(Protocol):
    inputs: tuple[TensorSpec, ...]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run every sample of ``feeds``; return the outputs stacked along the sample axis."""


class ArtifactRunner(Runner, Protocol):
    """A runner of a converted artifact, which knows its outputs and their quantization too."""

    outputs: tuple[TensorSpec, ...]

    def quantization(self, which: str) -> list[dict | None]:
        """Scale/zero point of each integer model input or output (``None`` for float tensors)."""


def per_sample(
    fn: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
    feeds: dict[str, np.ndarray],
    ranks: dict[str, int] | None = None,
) -> list[np.ndarray]:
    """Call ``fn`` one sample at a time and join the results along the sample axis.

    ``ranks`` (each input's number of dimensions) lets a sample be a whole input (:func:`tensors.is_whole`: a
    state, a scalar); the outputs of such samples are whole outputs too, stacked under a new sample axis."""
    ranks = ranks or {}
    count = len(next(iter(feeds.values())))
    whole = any(is_whole(v, ranks[k]) for k, v in feeds.items() if k in ranks)
    rows = [fn({k: one_sample(v, i, ranks.get(k, v.ndim)) for k, v in feeds.items()}) for i in range(count)]
    join = np.stack if whole else np.concatenate
    return [join([row[j] for row in rows]) for j in range(len(rows[0]))]


def feed_ranks(feeds: dict[str, np.ndarray], specs: Sequence[TensorSpec]) -> dict[str, int]:
    """Each feed's model input rank, pairing feeds with ``specs`` by position (runners take feeds in model order)."""
    return {name: len(spec.shape) for name, spec in zip(feeds, specs)}


def has_whole_samples(feeds: dict[str, np.ndarray], specs: Sequence[TensorSpec]) -> bool:
    return any(is_whole(feeds[name], rank) for name, rank in feed_ranks(feeds, specs).items())


def single(sample: dict[str, np.ndarray], specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """A one-sample feed (``SampleData.take(i, i + 1).inputs``) as the model takes it: whole inputs lose the
    sample axis."""
    ranks = feed_ranks(sample, specs)
    return {name: one_sample(v, 0, ranks[name]) if name in ranks else v for name, v in sample.items()}


def in_chunks(
    fn: Callable[[dict[str, np.ndarray]], list[np.ndarray]],
    feeds: dict[str, np.ndarray],
    size: int = 256,
    exact: bool = False,
) -> list[np.ndarray]:
    """Call ``fn`` on chunks of ``size`` samples and stack the results; ``exact`` pads the last chunk to ``size``
    (repeating its final sample) for a model that accepts only that batch, and drops the padding's outputs."""
    count = len(next(iter(feeds.values())))
    parts = []
    for i in range(0, count, size):
        chunk = {k: v[i : i + size] for k, v in feeds.items()}
        taken = len(next(iter(chunk.values())))
        if exact and taken < size:
            chunk = {k: np.concatenate([v, np.repeat(v[-1:], size - taken, axis=0)]) for k, v in chunk.items()}
        parts.append([o[:taken] for o in fn(chunk)])
    return [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]


def batched(
    fn: Callable[[dict[str, np.ndarray]], list[np.ndarray]], feeds: dict[str, np.ndarray], specs
) -> list[np.ndarray]:
    """Run ``fn`` over ``feeds`` in the batches the model's input ``specs`` accept: chunks of 256 for a dynamic
    batch, exactly the fixed batch otherwise (one sample at a time for a batch fixed at one)."""
    size = fixed_batch(specs)
    if size == 1 or has_whole_samples(feeds, specs):
        return per_sample(fn, feeds, feed_ranks(feeds, specs))
    if size is not None:
        return in_chunks(fn, feeds, size, exact=True)
    return in_chunks(fn, feeds)


def measure_latency_ms(
    runner: Runner, sample: dict[str, np.ndarray], warmup: int = 10, repeats: int = 50, idle_ms: float = 0.0
) -> dict[str, float]:
    """p50/p90 wall time of one inference on ``sample``, after ``warmup`` untimed runs.

    Runners that can bind a sample (every runner here) are timed on the runtime call alone: input
    quantization and Python-side conversions happen once, as an app would prepare its buffers.
    ``idle_ms`` sleeps that long before each timed call: an occasional inference (one per user request, one
    per frame, one per network message) finds caches and clocks colder than back-to-back calls do, and on
    this host costs up to twice as much.
    """
    call = runner.bind(sample) if hasattr(runner, "bind") else (lambda: runner.run(sample))
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        if idle_ms:
            time.sleep(idle_ms / 1e3)
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return {"p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90))}


def interleaved_p50(
    runners: dict[str, Runner], sample: dict[str, np.ndarray], rounds: int, warmup: int = 10, repeats: int = 50
) -> dict[str, float]:
    """Each runner's p50 (:func:`measure_latency_ms`), median over ``rounds`` rounds that take every runner in
    turn, so that drift and other load on the machine hit all of them alike (the benches' side-by-side ratios)."""
    p50: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            p50[name].append(measure_latency_ms(runner, sample, warmup=warmup, repeats=repeats)["p50"])
    return {name: float(np.median(values)) for name, values in p50.items()}


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Affine integer quantization: ``clip(round(x / scale) + zero_point)`` to ``dtype``'s range."""
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


class TFLiteRunner:
    """A ``.tflite`` file in the LiteRT interpreter (XNNPACK on the CPU)."""

    def __init__(self, path: str | Path, num_threads: int = HOST_THREADS, delegates: bool = True) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.interpreter = Interpreter(
            model_path=str(path), num_threads=num_threads, experimental_op_resolver_type=resolver
        )
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()
        self._out = self.interpreter.get_output_details()
        self.inputs = tuple(
            TensorSpec(d["name"], tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]).name) for d in self._in
        )
        self.outputs = tuple(
            TensorSpec(d["name"], tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]).name) for d in self._out
        )

    def quantization(self, which: str) -> list[dict | None]:
        """Scale/zero point of each integer model input or output (``None`` for float tensors)."""
        details = self._in if which == "inputs" else self._out
        result = []
        for d in details:
            scale, zero_point = d["quantization"]
            result.append({"scale": float(scale), "zero_point": int(zero_point)} if scale else None)
        return result

    def _model_inputs(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        arrays = []
        for detail, array in zip(self._in, feeds.values()):
            scale, zero_point = detail["quantization"]
            dtype = np.dtype(detail["dtype"])
            if scale and array.dtype != dtype:
                array = quantize(array, scale, zero_point, dtype)
            arrays.append(np.ascontiguousarray(array, dtype=dtype))
        return arrays

    def bind(self, sample: dict[str, np.ndarray]) -> Callable[[], object]:
        """One invocation on ``sample`` with its buffers prepared: set inputs, invoke, read outputs."""
        arrays = self._model_inputs(single(sample, self.inputs))

        def call():
            for detail, array in zip(self._in, arrays):
                self.interpreter.set_tensor(detail["index"], array)
            self.interpreter.invoke()
            return [self.interpreter.get_tensor(d["index"]) for d in self._out]

        return call

    def _invoke(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        for detail, array in zip(self._in, self._model_inputs(feeds)):
            self.interpreter.set_tensor(detail["index"], array)
        self.interpreter.invoke()
        results = []
        for detail in self._out:
            value = self.interpreter.get_tensor(detail["index"])
            scale, zero_point = detail["quantization"]
            if scale:
                value = (value.astype(np.float32) - zero_point) * scale
            results.append(np.array(value))
        return results

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        feeds = dict(zip([s.name for s in self.inputs], feeds.values()))
        if all(s.shape and s.shape[0] == 1 for s in self.inputs) or has_whole_samples(feeds, self.inputs):
            return per_sample(self._invoke, feeds, feed_ranks(feeds, self.inputs))
        return self._invoke(feeds)

    def op_names(self) -> list[str]:
        """Builtin operator names in execution order (without delegate partitioning)."""
        return [op["op_name"] for op in self.interpreter._get_ops_details()]  # noqa: SLF001 - public in tflite's analyzer


class OnnxRunner:
    """An ``.onnx`` file in onnxruntime on the CPU."""

    def __init__(self, path: str | Path, num_threads: int = HOST_THREADS) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = tuple(_ort_spec(i) for i in self.session.get_inputs())
        self.outputs = tuple(_ort_spec(o) for o in self.session.get_outputs())

    def quantization(self, which: str) -> list[dict | None]:
        """ONNX artifacts keep float model inputs and outputs (QDQ inside): no tensor-level quantization."""
        return [None] * len(self.inputs if which == "inputs" else self.outputs)

    def _named(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {spec.name: np.asarray(v, dtype=spec.dtype) for spec, v in zip(self.inputs, feeds.values())}

    def bind(self, sample: dict[str, np.ndarray]) -> Callable[[], object]:
        named = self._named(single(sample, self.inputs))
        return lambda: self.session.run(None, named)

    def _invoke(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        named = self._named(feeds)
        return [
            np.asarray(o, dtype=np.float32) if np.issubdtype(o.dtype, np.floating) else o
            for o in self.session.run(None, named)
        ]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return batched(self._invoke, feeds, self.inputs)


_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _ort_spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    return TensorSpec(arg.name, shape, _ORT_DTYPES.get(arg.type, "float32"))


class TorchRunner:
    """An eager ``torch.nn.Module``: the reference for PyTorch sources."""

    def __init__(self, module, inputs: tuple[TensorSpec, ...]) -> None:
        self.module = module
        self.inputs = inputs

    def bind(self, sample: dict[str, np.ndarray]) -> Callable[[], object]:
        import torch

        tensors = tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in single(sample, self.inputs).values())

        def call():
            with torch.no_grad():
                return self.module(*tensors)

        return call

    def _invoke(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            result = self.module(*(torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()))
        return [t.detach().float().numpy() if t.is_floating_point() else t.numpy() for t in _flatten(result)]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return batched(self._invoke, feeds, self.inputs)


class KerasRunner:
    """A Keras model called eagerly in TensorFlow: the reference for Keras sources."""

    def __init__(self, model, inputs: tuple[TensorSpec, ...]) -> None:
        self.model = model
        self.inputs = inputs

    def _invoke(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        args = list(feeds.values())
        result = self.model(args[0] if len(args) == 1 else args, training=False)
        return [np.asarray(t) for t in _flatten(result)]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return batched(self._invoke, feeds, self.inputs)


def _flatten(result) -> Sequence:
    if isinstance(result, (list, tuple)):
        return [t for item in result for t in _flatten(item)]
    if isinstance(result, dict):
        return [t for key in sorted(result) for t in _flatten(result[key])]
    return [result]


def open_artifact(path: str | Path, fmt: str) -> ArtifactRunner:
    """A runner for an artifact file of format ``tflite`` or ``onnx``."""
    if fmt == "tflite":
        return TFLiteRunner(path)
    if fmt == "onnx":
        return OnnxRunner(path)
    raise ValueError(f"no runtime for artifact format {fmt!r}")


def quiet_native_logs() -> None:
    """Lower TensorFlow/absl chatter; called once before the heavy imports."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
