"""ONNX: the source's own fp32 graph, then every precision with onnxruntime's tools.

PyTorch sources are exported with ``torch.onnx.export`` (dynamo), with a dynamic batch axis unless static shapes
are asked for; ONNX sources start from the graph as submitted.  fp16 converts weights and activations with float32
model I/O kept, or, for profiles whose runtime computes in fp32 (``accepts.onnx_fp16 = "weights"``: a CPU), stores
only the weights in fp16 (:func:`fp16_weights`); int8-dynamic quantizes weights; int8-full inserts QDQ pairs with int8 weights and activations
calibrated on the calibration samples.  Weights get one scale per output channel, or per tensor when asked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from compressor.converters.base import ConvertInput
from compressor.data import SampleData
from compressor.errors import ConversionError
from compressor.profiles import Format, Precision
from compressor.tensors import one_sample


class OnnxConverter:
    format = Format.ONNX
    precisions = tuple(Precision)
    route = "onnxruntime.quantization"  # what derives the precisions; the fp32 graph is the source's own route

    def fp32(self, inp: ConvertInput, out: Path) -> None:
        inp.source.export_onnx(out, inp.sample_args, inp.dynamic_batch)
        strip_provenance(out)

    def quantize(self, base: Path, out: Path, precision: Precision, inp: ConvertInput) -> dict | None:
        import onnx

        if precision is Precision.FP32:
            shutil.copyfile(base, out)
            return None
        if precision is Precision.FP16:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            model = onnx.load(str(base))
            if inp.onnx_fp16 == "weights":
                onnx.save(fp16_weights(model), str(out))
                return {"stored": "weights in fp16", "computed": "fp32 (onnxruntime folds the casts at load)"}
            onnx.save(convert_float_to_float16(model, keep_io_types=True), str(out))
            return None
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process

        prepared = inp.workdir / "fp32-prepared.onnx"
        if not prepared.exists():
            quant_pre_process(str(base), str(prepared), skip_symbolic_shape=True)
        per_channel = inp.weight_granularity == "channel"
        notes: dict = {}
        if inp.onnx_reduce_range:
            notes["weights"] = "7-bit, [-64, 64] (onnxruntime's reduce_range: an x86 CPU without VNNI)"
        if precision is Precision.INT8_DYNAMIC:
            source = _corrected(prepared, inp, inp.weight_granularity, notes)
            quantize_dynamic(
                str(source),
                str(out),
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
                reduce_range=inp.onnx_reduce_range,
            )
            return notes or None
        method = "minmax" if inp.calibration_method == "default" else inp.calibration_method
        if method != "auto":
            _quantize_static(_corrected(prepared, inp, inp.weight_granularity, notes), out, inp, method)
            return {**notes, "calibration": {"method": method, "samples": len(inp.calibration)}}
        chosen = _choose(prepared, out, inp, notes)
        return {**notes, "calibration": {**chosen, "samples": len(inp.calibration)}}


def strip_provenance(path: Path) -> int:
    """Remove what an exporter records on each node for debugging (``metadata_props``: torch.onnx's source stack
    traces, module namespaces and FX node names; ``doc_string``) from the graph at ``path``, in place.  No runtime
    reads them; on a small model they are several percent of the file (the digits CNN: 8.5 of 111 KB), and every
    precision derived from the graph ships without them.  Weights stored outside the file stay where they are.
    Returns the bytes saved."""
    import onnx

    before = path.stat().st_size
    model = onnx.load(str(path), load_external_data=False)
    graphs = [model.graph]
    for graph in graphs:
        for node in graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
            for attribute in node.attribute:  # the bodies of If, Loop and Scan nodes
                graphs.extend([attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs)
    onnx.save(model, str(path))
    return before - path.stat().st_size


# calibration method -> onnxruntime's CalibrationMethod name and extra options
ORT_METHODS: dict[str, tuple[str, dict[str, object]]] = {
    "minmax": ("MinMax", {}),
    "moving-average": ("MinMax", {"CalibMovingAverage": True}),
    "percentile": ("Percentile", {"CalibPercentile": 99.99}),
    "entropy": ("Entropy", {}),
}
AUTO_METHODS = ("minmax", "percentile")  # what auto tries (entropy is offered; it is slow on large models)


def _corrected(prepared: Path, inp: ConvertInput, granularity: str, notes: dict) -> Path:
    """The graph to quantize: ``prepared`` with biases corrected for int8 weights of ``granularity`` when the input
    asks for bias correction (made once per granularity), else ``prepared`` itself."""
    if not inp.bias_correction:
        return prepared
    from compressor import onnx_bias

    out = inp.workdir / f"fp32-prepared-bias-corrected-{granularity}-w{inp.onnx_weight_bits}.onnx"
    count_file = out.with_suffix(".layers")
    if not out.exists():
        count = onnx_bias.correct_biases(
            prepared,
            out,
            inp.calibration.inputs,
            per_channel=granularity == "channel",
            reduce_range=inp.onnx_reduce_range,
        )
        count_file.write_text(str(count))
    notes["bias_correction"] = {"layers": int(count_file.read_text())}
    return out


def _quantize_static(prepared: Path, out: Path, inp: ConvertInput, method: str) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in ORT_METHODS:
        raise ConversionError(
            f"onnxruntime has no {method} calibration; choose one of {', '.join(ORT_METHODS)} (or auto) for ONNX"
        )
    name, extra = ORT_METHODS[method]
    graph = onnx.load(str(prepared)).graph
    weights = {i.name for i in graph.initializer}
    graph_inputs = [i for i in graph.input if i.name not in weights]
    names = [i.name for i in graph_inputs]
    ranks = [len(i.type.tensor_type.shape.dim) for i in graph_inputs]
    quantize_static(
        str(prepared),
        str(out),
        _Calibration(names, inp.calibration, ranks),
        quant_format=QuantFormat.QDQ,
        per_channel=inp.weight_granularity == "channel",
        reduce_range=inp.onnx_reduce_range,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=getattr(CalibrationMethod, name),
        extra_options=dict(extra),
    )


def _choose(prepared: Path, out: Path, inp: ConvertInput, notes: dict) -> dict:
    """Quantize with each of :data:`AUTO_METHODS`, with weights per channel and (unless the input asks for one
    scale per tensor already) per tensor; keep at ``out`` the smallest whose agreement with the fp32 graph on the
    calibration samples is as good as the best's (top-1 agreement, then mean cosine within :data:`COSINE_TIE`);
    say what was tried."""
    from dataclasses import replace

    from compressor.calibration import AUTO_SAMPLES, COSINE_TIE
    from compressor.metrics import compare
    from compressor.runtimes import open_artifact

    sample = inp.calibration.take(0, min(len(inp.calibration), AUTO_SAMPLES))
    reference = open_artifact(prepared, "onnx").run(sample.inputs)
    granularities = ("channel", "tensor") if inp.weight_granularity == "channel" else ("tensor",)
    trials = []
    for method in AUTO_METHODS:
        for granularity in granularities:
            trial = inp.workdir / f"calibration-{method}-{granularity}.onnx"
            source = _corrected(prepared, inp, granularity, notes)
            _quantize_static(source, trial, replace(inp, weight_granularity=granularity), method)  # type: ignore[arg-type]
            metrics = compare(reference, open_artifact(trial, "onnx").run(sample.inputs), None)
            agreement = metrics["top1_agreement"] if metrics["top1_agreement"] is not None else 0.0
            trials.append((f"{method}/{granularity}", trial, agreement, metrics["cosine_mean"], trial.stat().st_size))
    best_agreement = max(t[2] for t in trials)
    best_cosine = max(t[3] for t in trials if t[2] == best_agreement)
    good = [t for t in trials if t[2] == best_agreement and t[3] >= best_cosine - COSINE_TIE]
    chosen = min(good, key=lambda t: (t[4], -t[3]))
    shutil.copyfile(chosen[1], out)
    for t in trials:
        t[1].unlink()
    method, granularity = chosen[0].split("/")
    tried = {t[0]: {"top1_agreement": t[2], "cosine_mean": round(t[3], 6), "bytes": t[4]} for t in trials}
    return {"method": method, "weights": f"per {granularity}", "scored_on": len(sample), "tried": tried}


def fp16_weights(model):
    """``model`` with every float32 initializer (and non-scalar ``Constant``) stored as float16 and widened back by
    a ``Cast`` (subgraphs of ``If``/``Loop``/``Scan`` included): half the bytes on disk, fp32 arithmetic. onnxruntime
    folds the casts of constants when the session loads, so the graph then runs the fp32 kernels on fp32 weights
    (a CPU's fast path)."""
    _fp16_initializers(model.graph, top=True)
    return model


def _fp16_initializers(graph, top: bool) -> None:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    for node in graph.node:
        for attribute in node.attribute:
            for subgraph in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs:
                _fp16_initializers(subgraph, top=False)
    inputs = {i.name for i in graph.input} if top else set()
    casts = []
    for index, tensor in enumerate(graph.initializer):
        if tensor.data_type != onnx.TensorProto.FLOAT or tensor.name in inputs:
            continue  # an initializer that is also a graph input can be overridden by a feed: keep it as it is
        name = tensor.name
        half = numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), f"{name}__fp16")
        graph.initializer[index].CopyFrom(half)  # ``tensor`` is this entry: it now holds the fp16 copy
        casts.append(onnx.helper.make_node("Cast", [half.name], [name], to=onnx.TensorProto.FLOAT))
    nodes = list(casts)
    for node in graph.node:
        nodes.append(node)
        value = next((a.t for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is not None and value.data_type == onnx.TensorProto.FLOAT and len(value.dims) > 0:
            name = node.output[0]  # a weight kept in a Constant node (exporters of control flow do that)
            value.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(value).astype(np.float16), value.name))
            node.output[0] = f"{name}__fp16"
            nodes.append(onnx.helper.make_node("Cast", [node.output[0]], [name], to=onnx.TensorProto.FLOAT))
    del graph.node[:]
    graph.node.extend(nodes)


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over the calibration samples, one at a time."""

    def __init__(self, names: list[str], data: SampleData, ranks: list[int]) -> None:
        self._rows = iter(
            [
                {n: np.ascontiguousarray(one_sample(a, i, r)) for n, a, r in zip(names, data.inputs.values(), ranks)}
                for i in range(len(data))
            ]
        )

    def get_next(self):
        return next(self._rows, None)


CONVERTER = OnnxConverter()
