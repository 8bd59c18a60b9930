"""Per-operator figures of one artifact for the report: work (MACs), weight bytes and output activation bytes.

Read from the artifact itself (TFLite through LiteRT's interpreter, ONNX through shape inference), in execution
order, so the figures are those of what ships: an int8 artifact's weights and activations count one byte each.
A constant shared by several operators is counted at the first one that reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Where the weight sits among an operator's inputs, and whether MACs are output elements x the weight's
# reduced size (conv-like) or x the first input's last dimension (matmul-like).
_TFLITE_MACS = {
    "CONV_2D": "conv",
    "DEPTHWISE_CONV_2D": "depthwise",
    "FULLY_CONNECTED": "dense",
    "BATCH_MATMUL": "matmul",
    "CONV_3D": "conv",
    "TRANSPOSE_CONV": "transpose",
}
_ONNX_MACS = {
    "Conv": ("onnx-conv", 1),
    "ConvInteger": ("onnx-conv", 1),
    "QLinearConv": ("onnx-conv", 3),
    "Gemm": ("matmul", 0),
    "MatMul": ("matmul", 0),
    "MatMulInteger": ("matmul", 0),
    "QLinearMatMul": ("matmul", 0),
}


@dataclass(frozen=True)
class LayerFigures:
    """One operator: its position, type, a readable name, MACs, weight bytes it brings, bytes it writes."""

    index: int
    op: str
    name: str
    macs: int
    weight_bytes: int
    activation_bytes: int
    output_shape: tuple[int, ...]


def layer_figures(path: str | Path, fmt: str) -> list[LayerFigures]:
    """The per-operator figures of the artifact at ``path`` (``fmt`` ``tflite`` or ``onnx``)."""
    return _tflite_layers(Path(path)) if fmt == "tflite" else _onnx_layers(Path(path))


def readable_name(tensor_name: str) -> str:
    """A short name for an operator from its output tensor's name.

    Converters name tensors after the module path of every fused layer (``a/b/Conv2d_0;;a/b/ReLU_2;1``); this
    keeps the last path component of each, innermost first (``Conv2d_0+ReLU_2``).
    """
    parts = [p for p in tensor_name.split(";") if p and not p.isdigit()]
    leaves = [re.sub(r"^(torch\.nn\.modules\.)?([a-z_]+\.)*", "", p.rsplit("/", 1)[-1]) for p in parts]
    unique = list(dict.fromkeys(leaf for leaf in reversed(leaves) if leaf))
    return "+".join(unique) or tensor_name


def _macs(kind: str, out_shape, weight_shape, first_shape) -> int:
    """Multiply-accumulates of one operator from its shapes (``first_shape``: its first input's; arrays or tuples)."""
    first_shape = None if first_shape is None or len(first_shape) == 0 else tuple(int(d) for d in first_shape)
    out = int(np.prod(out_shape)) if len(out_shape) else 1
    if kind in ("conv", "depthwise") and weight_shape is not None:
        reduced = int(np.prod(weight_shape[1:-1])) * (int(weight_shape[-1]) if kind == "conv" else 1)
        return out * reduced
    if kind == "onnx-conv" and weight_shape is not None:
        return out * int(np.prod(weight_shape[1:]))
    if kind == "dense" and weight_shape is not None:
        return out * int(weight_shape[-1])
    first_known = first_shape is not None and len(first_shape) > 0  # shapes are numpy arrays (TFLite) or lists
    if kind == "matmul" and first_known:
        return out * int(first_shape[-1])
    if kind == "transpose" and weight_shape is not None and first_known:
        return int(np.prod(first_shape)) * int(np.prod(weight_shape[:-1]))
    return 0


def _tflite_layers(path: Path) -> list[LayerFigures]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()  # noqa: SLF001 - the analyzer's own accessor (as compressor.analysis)
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    produced = {t for op in ops for t in op["outputs"]}
    graph_inputs = {d["index"] for d in interpreter.get_input_details()}

    def nbytes(i: int) -> int:
        return int(np.prod(tensors[i]["shape"])) * np.dtype(tensors[i]["dtype"]).itemsize

    seen: set[int] = set()
    layers = []
    for position, op in enumerate(ops):
        inputs = [t for t in op["inputs"] if t >= 0]
        constants = [t for t in inputs if t not in produced and t not in graph_inputs and t not in seen]
        seen.update(constants)
        out = op["outputs"][0]
        weight = tensors[inputs[1]]["shape"] if len(inputs) > 1 else None
        first = tensors[inputs[0]]["shape"] if inputs else None
        layers.append(
            LayerFigures(
                position,
                op["op_name"],
                readable_name(tensors[out]["name"]),
                _macs(_TFLITE_MACS.get(op["op_name"], ""), tensors[out]["shape"], weight, first),
                sum(nbytes(t) for t in constants),
                sum(nbytes(t) for t in op["outputs"]),
                tuple(int(d) for d in tensors[out]["shape"]),
            )
        )
    return layers


def _onnx_layers(path: Path) -> list[LayerFigures]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    shapes: dict[str, tuple[int, ...]] = {}
    itemsizes: dict[str, int] = {}
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for name, array in weights.items():
        shapes[name], itemsizes[name] = tuple(array.shape), array.dtype.itemsize
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor = value.type.tensor_type
        shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in tensor.shape.dim)
        elem = tensor.elem_type
        itemsizes[value.name] = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem)).itemsize if elem else 4
    constant_outputs = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    seen: set[str] = set()
    layers: list[LayerFigures] = []
    for node in (n for n in graph.node if n.op_type != "Constant"):
        constants = [t for t in node.input if (t in weights or t in constant_outputs) and t not in seen]
        seen.update(constants)
        kind, weight_at = _ONNX_MACS.get(node.op_type, ("", 1))
        out = node.output[0]
        weight = shapes.get(node.input[weight_at]) if len(node.input) > weight_at else None
        first = shapes.get(node.input[0]) if node.input else None
        layers.append(
            LayerFigures(
                len(layers),
                node.op_type,
                node.name or out,
                _macs(kind, shapes.get(out, ()), weight, first),
                sum(_onnx_const_bytes(t, weights, constant_outputs) for t in constants),
                sum(int(np.prod(shapes.get(o, ()))) * itemsizes.get(o, 4) for o in node.output if o in shapes),
                shapes.get(out, ()),
            )
        )
    return layers


def _onnx_const_bytes(name: str, weights: dict, constant_outputs: dict) -> int:
    from onnx import numpy_helper

    if name in weights:
        return int(weights[name].nbytes)
    return sum(numpy_helper.to_array(a.t).nbytes for a in constant_outputs[name].attribute if a.name == "value")
