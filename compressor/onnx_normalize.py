"""Normalise an ONNX graph before any ONNX -> PyTorch route (onnx2torch), checked against the original.

Exporters other than PyTorch's write graphs onnx2torch cannot read as they are: PaddlePaddle and Caffe2 keep
weights in ``Constant`` / ``ConstantOfShape`` nodes (onnx2torch wants initializers: ``KeyError:
'conv1_weights'``), leave every dimension dynamic, compute shapes at run time and use old opsets or
``auto_pad``. :func:`normalize` turns such a graph into an equivalent, static one:

1. fix dynamic input dimensions from the user's data (one sample: batch 1) or explicit shapes;
2. convert the opset to :data:`TARGET_OPSET` (what onnx2torch supports) with ``onnx.version_converter``;
3. fold constants with onnxscript's optimizer (``optimize_ir``): shape subgraphs (``Shape`` -> ``Gather`` ->
   ``Concat`` -> ``Reshape`` targets) become constants once the inputs are static, ``ConstantOfShape`` weight
   fills are materialised (onnxscript keeps them by default to save bytes; here they must become tensors), and
   every ``Constant`` is lifted to an initializer; initializers listed as graph inputs (IR < 4) are unlisted;
4. infer shapes (``onnx.shape_inference``, with data propagation) and make ``auto_pad`` pads explicit from the
   inferred input sizes (onnxscript's rewriter already does it for ``Conv``; pools and ``ConvTranspose`` here,
   with onnxruntime's convention, a few lines);
5. run the original and the normalised graph in onnxruntime on the feeds and raise
   :class:`~compressor.errors.ConversionError` when they differ.

Why onnxscript's optimizer, by measurement (docs/coverage-findings.md has the table): on the PP-OCRv4 det/rec,
PP-OCR cls, the nine ``onnx`` wheel light graphs and silero-vad it leaves graphs onnx2torch converts that match
onnxruntime to 3e-5, in 0.1-13 s a graph on a loaded 2-core host. onnx-simplifier 0.4.36 gives the same
results (a few nodes fewer) but has no opset conversion and, installed beside onnx2tf in an isolated venv,
resolved to onnx 1.19 / onnxruntime 1.23; onnx itself has no constant folding. onnxscript is already a
dependency (torch.onnx's own optimizer) and its IR passes compose: freeze inputs -> fold -> fix shapes -> fold.
The graph outputs of multi-output nodes get an ``Identity`` each (onnx2torch returns the node's whole tuple
for them), and intermediate ``value_info`` is dropped from the result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np

from compressor.errors import ConversionError, InvalidInputError
from compressor.tensors import one_sample

TARGET_OPSET = 17  # the newest opset onnx2torch 1.5 converts (compressor.onnx_torch.ONNX2TORCH_OPSET)
ATOL, RTOL = 1e-4, 1e-3  # against each output's own scale: max |a - b| <= ATOL + RTOL * max |a|
POOLS = ("MaxPool", "AveragePool", "LpPool")
DEFAULT_ZERO = ("noop_with_empty_axes",)  # attributes newer opsets added with a default of 0


def normalize(
    model,
    feeds: Mapping[str, np.ndarray] | None = None,
    input_shapes: Mapping[str, tuple] | None = None,
    *,
    freeze: Mapping[str, np.ndarray] | None = None,
    target_opset: int = TARGET_OPSET,
    check: bool = True,
):
    """Return ``(normalised onnx.ModelProto, report)`` for ``model`` (left unchanged).

    ``feeds`` holds the user's samples by input name (leading sample axis, as ``--data``); the first sample
    fixes dynamic dimensions and up to 8 samples are used for the check. ``input_shapes`` (name -> full shape,
    e.g. ``(1, 3, 48, 320)``) wins over the data. ``freeze`` turns inputs into constants (name -> value, e.g.
    silero-vad's ``sr``: 16000), so that branches on them (``If``) fold away; the check feeds the original those
    values. Raises :class:`InvalidInputError` when a dynamic dimension is left unknown, :class:`ConversionError`
    when a step fails or the normalised graph computes differently.
    """
    import onnx

    start = time.perf_counter()
    original = model
    model = onnx.ModelProto()
    model.CopyFrom(original)
    report: dict = {"nodes_before": len(model.graph.node), "opset_before": _opset(model)}
    report["frozen_inputs"] = _freeze_inputs(model, freeze or {})
    if freeze:  # fold the branches on the frozen values before static shapes meet the branches not taken
        model, _ = _step("constant folding (onnxscript)", _fold, model)
    report["fixed_shapes"] = _fix_input_shapes(model, feeds or {}, input_shapes or {})
    model = _step("opset conversion", _convert_opset, model, target_opset)
    report["opset"] = _opset(model)
    model, report["constants_materialized"] = _step("constant folding (onnxscript)", _fold, model)
    model = _step("shape inference", _infer_shapes, model)
    report["auto_pad_made_explicit"] = _explicit_pads(model)
    report["outputs_given_identity"] = _own_output_nodes(model)
    # inferred intermediate types would go stale in later rewrites (onnxruntime's fp16 converter keeps some
    # tensors float and leaves value_info claiming otherwise); inputs and outputs keep their static shapes
    del model.graph.value_info[:]
    report["nodes_after"] = len(model.graph.node)
    report["op_types"] = sorted({n.op_type for n in model.graph.node})
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"the normalised ONNX graph is not valid ONNX: {str(exc)[:300]}") from None
    if check and feeds:
        report["check"] = compare_in_onnxruntime(original, model, {**feeds, **_as_samples(freeze or {}, feeds)})
    report["seconds"] = round(time.perf_counter() - start, 2)
    return model, report


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _step(what: str, fn, *args):
    try:
        return fn(*args)
    except (ConversionError, InvalidInputError):
        raise
    except Exception as exc:
        raise ConversionError(
            f"ONNX normalisation failed in {what} ({type(exc).__name__}: {str(exc)[:300]}); the graph can still be "
            "used as submitted by ONNX profiles"
        ) from exc


def _graph_inputs(model) -> list:
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def _fix_input_shapes(model, feeds: Mapping[str, np.ndarray], shapes: Mapping[str, tuple]) -> dict[str, list[int]]:
    """Give every graph input a static shape: explicit ``shapes``, else one sample of ``feeds``."""
    fixed = {}
    for value in _graph_inputs(model):
        dims = value.type.tensor_type.shape.dim
        wanted: list
        if value.name in shapes:
            wanted = [int(d) for d in shapes[value.name]]
        elif value.name in feeds:
            array = np.asarray(feeds[value.name])
            wanted = list(array.shape[1:]) if array.ndim == len(dims) + 1 else [1, *array.shape[1:]]
        else:
            wanted = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
            if None in wanted:
                raise InvalidInputError(
                    f"ONNX input {value.name!r} has dynamic dimensions {_dims_text(dims)} and no sample data or "
                    f"shape was given for it; pass data for it or an explicit shape (e.g. {value.name}=1x3x224x224)"
                )
        if len(wanted) != len(dims):
            raise InvalidInputError(
                f"ONNX input {value.name!r} has {len(dims)} dimensions {_dims_text(dims)}; the shape given for it, "
                f"{wanted}, has {len(wanted)}"
            )
        for dim, size in zip(dims, wanted):
            if dim.HasField("dim_value") and dim.dim_value > 0 and dim.dim_value != size:
                raise InvalidInputError(
                    f"ONNX input {value.name!r} has fixed dimensions {_dims_text(dims)}; the data or shape given "
                    f"for it is {wanted}"
                )
            dim.Clear()
            dim.dim_value = int(size)
        fixed[value.name] = list(map(int, wanted))
    for value in model.graph.output:  # exporters' symbolic output dims would contradict the now static graph
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.Clear()
    del model.graph.value_info[:]
    return fixed


def _freeze_inputs(model, values: Mapping[str, np.ndarray]) -> dict[str, list]:
    """Graph inputs named in ``values`` become initializers holding those values."""
    from onnx import helper, numpy_helper

    inputs = {i.name: i for i in _graph_inputs(model)}
    unknown = sorted(set(values) - set(inputs))
    if unknown:
        raise InvalidInputError(f"cannot freeze {unknown}: the graph's inputs are {sorted(inputs)}")
    for name, value in values.items():
        elem = inputs[name].type.tensor_type.elem_type
        array = np.asarray(value, dtype=helper.tensor_dtype_to_np_dtype(elem))
        model.graph.input.remove(inputs[name])
        model.graph.initializer.append(numpy_helper.from_array(array, name))
    return {name: np.asarray(v).tolist() for name, v in values.items()}


def _as_samples(values: Mapping[str, np.ndarray], feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Frozen values repeated once per sample of ``feeds`` (the sample axis on top of each value)."""
    count = len(next(iter(feeds.values())))
    return {name: np.stack([np.asarray(v)] * count) for name, v in values.items()}


def _dims_text(dims) -> str:
    return "[" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in dims) + "]"


def _convert_opset(model, target: int):
    """``onnx.version_converter`` to ``target``, then attributes the target opset's schema lacks removed where
    they held their default (going down from 18, the converter moves ``ReduceMean``'s axes back into an attribute
    but leaves ``noop_with_empty_axes=0``, which the checker refuses; torch.onnx writes opset 18)."""
    from onnx import defs, version_converter

    if _opset(model) == target:
        return model
    converted = version_converter.convert_version(model, target)
    for node in converted.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        known = set(defs.get_schema(node.op_type, target, "").attributes)
        stale = [a for a in node.attribute if a.name not in known]
        for attribute in stale:
            if attribute.name in DEFAULT_ZERO and attribute.i == 0:
                node.attribute.remove(attribute)
            else:
                raise ConversionError(
                    f"{node.op_type} node {node.name!r} uses attribute {attribute.name!r}, which opset {target} "
                    f"does not have; onnx2torch reads opsets up to {target}"
                )
    return converted


def _fold(model):
    """onnxscript's optimizer with ConstantOfShape fills folded too; returns the model and how many were."""
    import onnx
    import onnx_ir as ir
    from onnx_ir.passes import common
    from onnxscript.optimizer import optimize_ir

    graph = ir.serde.deserialize_model(model)
    if graph.ir_version < 4:  # initializers must be graph inputs before IR 4; unlisting them needs IR >= 4
        graph.ir_version = 8
    common.RemoveInitializersFromInputsPass()(graph)
    fills = sum(n.op_type == "ConstantOfShape" for n in graph.graph)
    optimize_ir(
        graph,
        input_size_limit=1 << 31,
        output_size_limit=1 << 31,
        should_fold=lambda node: True if node.op_type == "ConstantOfShape" else None,
    )
    left = sum(n.op_type == "ConstantOfShape" for n in graph.graph)
    folded = ir.serde.serialize_model(graph)
    folded.ir_version = max(folded.ir_version, onnx.helper.find_min_ir_version_for(list(folded.opset_import)))
    return folded, fills - left


def _infer_shapes(model):
    """Strict shape inference; where it fails inside a subgraph (an ``If`` branch), the lenient pass of it."""
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except onnx.shape_inference.InferenceError:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)


def _explicit_pads(model) -> int:
    """Replace ``auto_pad`` SAME_UPPER/SAME_LOWER/VALID by explicit ``pads`` (ONNX operator spec formulas)."""
    from onnx import helper, numpy_helper

    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in _typed_values(model)}
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    del numpy_helper  # weights' dims are enough
    changed = 0
    for node in model.graph.node:
        attrs = {a.name: a for a in node.attribute}
        mode = attrs["auto_pad"].s.decode() if "auto_pad" in attrs else "NOTSET"
        if mode == "NOTSET" or (node.op_type not in ("Conv", "ConvTranspose") and node.op_type not in POOLS):
            continue
        spatial = shapes.get(node.input[0], [])[2:]
        kernel = list(attrs["kernel_shape"].ints) if "kernel_shape" in attrs else weights.get(node.input[1], [])[2:]
        if not spatial or not kernel or 0 in spatial:
            raise ConversionError(
                f"cannot make auto_pad={mode} explicit on {node.op_type} node {node.name!r}: its input shape is "
                "unknown after shape inference"
            )
        rank = len(spatial)
        strides = list(attrs["strides"].ints) if "strides" in attrs else [1] * rank
        dilations = list(attrs["dilations"].ints) if "dilations" in attrs else [1] * rank
        if mode == "VALID":
            pads = [0] * (2 * rank)
        elif node.op_type == "ConvTranspose":
            extra = list(attrs["output_padding"].ints) if "output_padding" in attrs else [0] * rank
            totals = [
                max(0, s * (i - 1) + e + (k - 1) * d + 1 - i * s)
                for i, k, s, d, e in zip(spatial, kernel, strides, dilations, extra)
            ]
            # as for Conv, SAME_UPPER puts the odd pixel at the end: what onnxruntime computes (checked on odd sizes)
            begin = [t // 2 if mode == "SAME_UPPER" else t - t // 2 for t in totals]
            pads = begin + [t - b for t, b in zip(totals, begin)]
        else:
            totals = [
                max(0, (math.ceil(i / s) - 1) * s + (k - 1) * d + 1 - i)
                for i, k, s, d in zip(spatial, kernel, strides, dilations)
            ]
            begin = [t // 2 if mode == "SAME_UPPER" else t - t // 2 for t in totals]
            pads = begin + [t - b for t, b in zip(totals, begin)]
        kept = [a for a in node.attribute if a.name not in ("auto_pad", "pads")]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("pads", pads)])
        changed += 1
    return changed


def _own_output_nodes(model) -> int:
    """Give each graph output that a multi-output node produces an ``Identity`` of its own.

    onnx2torch returns, per graph output, the whole output of the node making it: for an ``LSTM`` whose
    ``Y_h`` and ``Y_c`` are graph outputs it returns ``(Y, Y_h, Y_c)`` once, so outputs shift and multiply.
    """
    from onnx import helper

    producers = {name: node for node in model.graph.node for name in node.output}
    changed = 0
    for value in model.graph.output:
        node = producers.get(value.name)
        if node is None or len([o for o in node.output if o]) == 1:
            continue
        inner = f"{value.name}__edgeforge_pre_identity"
        node.output[list(node.output).index(value.name)] = inner
        for consumer in model.graph.node:
            for i, name in enumerate(consumer.input):
                if name == value.name:
                    consumer.input[i] = inner
        model.graph.node.append(helper.make_node("Identity", [inner], [value.name], name=f"{value.name}__identity"))
        changed += 1
    return changed


def _typed_values(model):
    return [*model.graph.input, *model.graph.value_info, *model.graph.output]


def compare_in_onnxruntime(original, normalised, feeds: Mapping[str, np.ndarray], samples: int = 8) -> dict:
    """Run both graphs in onnxruntime on up to ``samples`` samples, one at a time; raise when they differ."""
    import onnxruntime as ort

    def session(model):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    before, after = session(original), session(normalised)

    def sample(which, index):
        ranks = {i.name: len(i.shape) for i in which.get_inputs()}
        return {name: one_sample(np.asarray(feeds[name]), index, rank) for name, rank in ranks.items()}

    count = min(samples, len(next(iter(feeds.values()))))
    worst = 0.0
    for index in range(count):
        pairs = zip(before.run(None, sample(before, index)), after.run(None, sample(after, index)))
        for output, (a, b) in enumerate(pairs):
            if a.shape != b.shape:
                raise ConversionError(
                    f"the normalised ONNX graph's output {output} has shape {list(b.shape)}, the original's "
                    f"{list(a.shape)} on sample {index}"
                )
            if a.size == 0 or not np.issubdtype(a.dtype, np.number):
                continue
            diff = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
            scale = float(np.abs(a).max())
            if diff > ATOL + RTOL * scale:
                raise ConversionError(
                    f"the normalised ONNX graph computes output {output} differently from the original on sample "
                    f"{index} in onnxruntime (max abs difference {diff:.3g}, output scale {scale:.3g}); this is a "
                    "bug in the normalisation, please report it with the model"
                )
            worst = max(worst, diff)
    return {"samples": count, "max_abs_diff": worst}
