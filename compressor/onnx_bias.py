"""Bias correction for ONNX graphs before onnxruntime quantizes them (see :mod:`compressor.calibration`).

Each ``Conv`` and ``Gemm`` with constant weights and bias, and each ``MatMul`` by a constant followed by an ``Add``
of a constant, gets its bias corrected by ``(Wq - W) E[x]``: the shift its int8 weights (onnxruntime's: symmetric,
127 levels, or 64 with ``reduce_range``; per output channel or per tensor) cause in its output mean, with ``E[x]``
measured by running the fp32 graph on the calibration samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compressor.calibration import BIAS_SAMPLES, quantize_weights
from compressor.tensors import one_sample


@dataclass(frozen=True)
class _Target:
    source: str  # the layer's input tensor
    weight: str  # initializer names
    bias: str
    kind: str  # conv, gemm (weight [out, in]), matmul (weight [in, out])


def _targets(graph) -> list[_Target]:
    from onnx import helper

    constants = {i.name for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    targets = []
    for node in graph.node:
        if node.op_type == "Conv" and len(node.input) == 3 and {node.input[1], node.input[2]} <= constants:
            targets.append(_Target(node.input[0], node.input[1], node.input[2], "conv"))
        elif node.op_type == "Gemm" and len(node.input) == 3 and {node.input[1], node.input[2]} <= constants:
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if attributes.get("transA", 0) == 0:
                kind = "gemm" if attributes.get("transB", 0) else "matmul"
                targets.append(_Target(node.input[0], node.input[1], node.input[2], kind))
        elif node.op_type == "MatMul" and node.input[1] in constants:
            after = consumers.get(node.output[0], [])
            if len(after) == 1 and after[0].op_type == "Add":
                other = [n for n in after[0].input if n != node.output[0]]
                if len(other) == 1 and other[0] in constants:
                    targets.append(_Target(node.input[0], node.input[1], other[0], "matmul"))
    return targets


def _means(model, targets: list[_Target], inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per target input tensor, its mean per channel (axis 1 for convolutions, the last axis otherwise)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    wanted = sorted({t.source for t in targets})
    for name in wanted:
        if name not in existing:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    ranks = [len(i.shape) for i in session.get_inputs()]
    conv_inputs = {t.source for t in targets if t.kind == "conv"}
    arrays = list(inputs.values())
    count = min(len(arrays[0]), BIAS_SAMPLES)
    sums: dict[str, np.ndarray] = {}
    for i in range(count):
        feeds = {n: np.ascontiguousarray(one_sample(a, i, r)) for n, a, r in zip(names, arrays, ranks)}
        for name, value in zip(wanted, session.run(wanted, feeds)):
            value = np.asarray(value, dtype=np.float64)
            axis = 1 if name in conv_inputs else value.ndim - 1
            mean = np.moveaxis(value, axis, -1).reshape(-1, value.shape[axis]).mean(axis=0)
            sums[name] = sums.get(name, 0.0) + mean
    return {name: total / count for name, total in sums.items()}


def correct_biases(
    path: Path, out: Path, inputs: Mapping[str, np.ndarray], per_channel: bool = True, reduce_range: bool = False
) -> int:
    """Write the graph at ``path`` to ``out`` with every layer's bias corrected for its int8 weight error (7-bit
    weights with ``reduce_range``); return how many layers were corrected."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    targets = _targets(model.graph)
    means = _means(model, targets, inputs) if targets else {}
    initializers = {i.name: i for i in model.graph.initializer}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    corrected = 0
    for target in targets:
        mean = means.get(target.source)
        weights = numpy_helper.to_array(initializers[target.weight]).astype(np.float64)
        bias = numpy_helper.to_array(initializers[target.bias]).astype(np.float64)
        if (
            mean is None
            or uses.get(target.bias, 0) != 1
            or initializers[target.bias].data_type != onnx.TensorProto.FLOAT
        ):
            continue
        axis = (1 if target.kind == "matmul" else 0) if per_channel else None
        error = quantize_weights(weights, axis, 64 if reduce_range else 127) - weights
        if target.kind == "conv":  # [O, I / groups, kH, kW]; input channels by group
            groups = max(len(mean) // max(weights.shape[1], 1), 1)
            per_group = np.repeat(np.arange(groups), weights.shape[0] // groups)
            shift = np.einsum("oi,oi->o", error.sum(axis=(2, 3)), mean.reshape(groups, -1)[per_group])
        elif target.kind == "gemm":  # [O, I]
            shift = error @ mean
        else:  # [I, O]
            shift = mean @ error
        if shift.shape != bias.shape:
            continue
        initializers[target.bias].CopyFrom(numpy_helper.from_array((bias - shift).astype(np.float32), target.bias))
        corrected += 1
    onnx.save(model, str(out))
    return corrected
