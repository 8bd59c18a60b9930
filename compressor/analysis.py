"""Static figures of models and artifacts: MACs, weight bytes, operator counts, peak activation memory.

Peak activation memory is estimated per artifact by a liveness pass over its
graph in execution order: a tensor is live from the operator that produces it
(or from the start, for graph inputs) to the last operator that reads it, and
the peak is the largest sum of live non-constant tensor bytes.  It reflects the
artifact's real dtypes, so int8 activations count a quarter of float32 ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class GraphFigures:
    n_ops: int
    weight_bytes: int
    peak_activation_bytes: int
    op_types: tuple[str, ...]


def torch_macs(module, sample_args: tuple) -> int:
    """Multiply-accumulates of one forward pass, counted by torch's FlopCounterMode (FLOPs / 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(*sample_args)
    return int(counter.get_total_flops() // 2)


def keras_macs(model, input_shapes: list[tuple[int, ...]]) -> int:
    """Multiply-accumulates of one forward pass, counted by TensorFlow's profiler on the frozen graph."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    specs = [tf.TensorSpec(shape, tf.float32) for shape in input_shapes]
    function = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    frozen = convert_variables_to_constants_v2(function.get_concrete_function(*specs))
    options = tf.compat.v1.profiler.ProfileOptionBuilder(tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
    options = options.with_empty_output().build()
    info = tf.compat.v1.profiler.profile(graph=frozen.graph, options=options)
    return int(info.total_float_ops // 2)


def _peak(order: list[tuple[list[int], list[int]]], sizes: dict[int, int], inputs: list[int]) -> int:
    """Largest total size of live tensors while running ``order`` (each step: tensors read, tensors written)."""
    last_read = {t: step for step, (reads, _) in enumerate(order) for t in reads}
    live = {t: sizes.get(t, 0) for t in inputs}
    peak = sum(live.values())
    for step, (_reads, writes) in enumerate(order):
        live.update({t: sizes.get(t, 0) for t in writes})
        peak = max(peak, sum(live.values()))
        for t in [t for t in live if last_read.get(t, len(order)) <= step]:  # never-read tensors are outputs
            del live[t]
    return peak


def tflite_figures(path: str | Path) -> GraphFigures:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()  # noqa: SLF001 - the analyzer's own accessor
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    produced = {t for op in ops for t in op["outputs"]}
    graph_inputs = [d["index"] for d in interpreter.get_input_details()]
    sizes = {i: int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize for i, d in tensors.items()}
    constants = [i for i in tensors if i not in produced and i not in graph_inputs]
    order = [([t for t in op["inputs"] if t >= 0 and t not in constants], list(op["outputs"])) for op in ops]
    return GraphFigures(
        n_ops=len(ops),
        weight_bytes=sum(sizes[i] for i in constants),
        peak_activation_bytes=_peak(order, sizes, graph_inputs),
        op_types=tuple(sorted({op["op_name"] for op in ops})),
    )


def onnx_figures(path: str | Path) -> GraphFigures:
    import onnx
    from onnx import numpy_helper

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    weights = {i.name: numpy_helper.to_array(i).nbytes for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            weights[node.output[0]] = sum(
                numpy_helper.to_array(a.t).nbytes for a in node.attribute if a.name == "value"
            )
    sizes: dict[str, int] = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in tensor.shape.dim]
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).itemsize if tensor.elem_type else 4
        sizes[value.name] = int(np.prod(dims)) * itemsize
    names = sorted(sizes)
    index = {n: i for i, n in enumerate(names)}
    nodes = [n for n in graph.node if n.op_type != "Constant"]
    order = [
        ([index[t] for t in n.input if t in index and t not in weights], [index[t] for t in n.output if t in index])
        for n in nodes
    ]
    graph_inputs = [index[v.name] for v in graph.input if v.name in index and v.name not in weights]
    return GraphFigures(
        n_ops=len(nodes),
        weight_bytes=sum(weights.values()),
        peak_activation_bytes=_peak(order, {index[n]: s for n, s in sizes.items()}, graph_inputs),
        op_types=tuple(sorted({n.op_type for n in nodes})),
    )


def artifact_figures(path: str | Path, fmt: str) -> GraphFigures:
    return tflite_figures(path) if fmt == "tflite" else onnx_figures(path)


def onnx_macs(model, input_shapes: dict[str, tuple[int, ...]]) -> int | None:
    """Multiply-accumulates of one forward pass of an ONNX graph at ``input_shapes``, from its own shapes.

    Shapes come from ONNX shape inference with the inputs fixed to ``input_shapes``; convolutions, transposed
    convolutions, Gemm and MatMul count (the operators where the work is).  None when shapes cannot be inferred.
    """
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in fixed.graph.input:
        if value.name in input_shapes:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, input_shapes[value.name]):
                dim.Clear()
                dim.dim_value = int(size)
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception:  # noqa: BLE001 - a graph shape inference cannot follow has no MAC count
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(int(d.dim_value) for d in dims)
    for init in inferred.graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
    return sum(_node_macs(node, shapes) for node in inferred.graph.node)


def _node_macs(node, shapes: dict[str, tuple[int, ...]]) -> int:
    def numel(name: str) -> int:
        return int(np.prod(shapes[name])) if name in shapes else 0

    inputs = [i for i in node.input if i]
    if node.op_type == "Conv" and len(inputs) > 1 and inputs[1] in shapes:
        weight = shapes[inputs[1]]  # [out, in / group, *kernel]
        return numel(node.output[0]) * int(np.prod(weight[1:]))
    if node.op_type == "ConvTranspose" and len(inputs) > 1 and inputs[1] in shapes:
        weight = shapes[inputs[1]]  # [in, out / group, *kernel]
        return numel(inputs[0]) * int(np.prod(weight[1:]))
    if node.op_type in ("Gemm", "MatMul") and len(inputs) > 1 and inputs[0] in shapes and node.output[0] in shapes:
        transposed = any(a.name == "transA" and a.i for a in node.attribute)
        reduced = shapes[inputs[0]][-2] if transposed else shapes[inputs[0]][-1]
        return numel(node.output[0]) * int(reduced)
    return 0
