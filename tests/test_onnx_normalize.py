"""ONNX normalisation (compressor/onnx_normalize.py) and the extra onnx2torch converters, on real graphs.

Each normalised graph is compared with the original in onnxruntime (normalize does it and raises), then turned
into PyTorch by onnx2torch and compared with onnxruntime again. The onnx wheel's light graphs have every weight
set to one constant, so they are also compared with seeded random weights, where a wrong op would show.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from model_zoo import FONT_DIR, LIGHT, build, feeds_for, one_sample
from onnx import TensorProto, helper, numpy_helper
from support import require

from compressor.errors import ConversionError, InvalidInputError
from compressor.onnx_converters import register
from compressor.onnx_normalize import TARGET_OPSET, compare_in_onnxruntime, normalize


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture
def fonts():
    require(FONT_DIR.is_dir(), f"DejaVu fonts in {FONT_DIR} (Debian fonts-dejavu-core) render the OCR zoo's text")


def _convert(model):
    from compressor.onnx_torch import _torchvision_stand_in

    with _torchvision_stand_in():
        from onnx2torch import convert
    register()
    return convert(model).eval()


def _ort(model, feeds):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})


def _torch_vs_ort(model, samples) -> float:
    """Max abs difference between onnx2torch's module and onnxruntime over ``samples`` (dicts of one sample)."""
    import torch
    from model_zoo import _flatten

    module = _convert(model)
    names = [i.name for i in model.graph.input]
    worst = 0.0
    for sample in samples:
        with torch.no_grad():
            got = _flatten(module(*[torch.from_numpy(np.ascontiguousarray(sample[n])) for n in names]))
        reference = _ort(model, sample)
        assert len(got) == len(reference)
        worst = max(worst, *(float(np.abs(a - b.numpy()).max()) for a, b in zip(reference, got)))
    return worst


def _samples(model, feeds, count=3):
    ranks = {i.name: len(i.type.tensor_type.shape.dim) for i in model.graph.input}
    return [{k: one_sample(v, i, ranks[k]) for k, v in feeds.items() if k in ranks} for i in range(count)]


def _random_weights(model, seed=0):
    rng = np.random.default_rng(seed)
    for index, tensor in enumerate(model.graph.initializer):
        array = numpy_helper.to_array(tensor)
        if array.dtype == np.float32 and array.size >= 16:
            scale = 1 / np.sqrt(max(1, int(np.prod(array.shape[1:])))) if array.ndim > 1 else 1.0
            values = rng.standard_normal(array.shape) * scale if array.ndim > 1 else rng.uniform(0.5, 1.5, array.shape)
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(values.astype(np.float32), tensor.name))
    return model


@pytest.mark.parametrize("name", ["ppocr-cls", "ppocr-rec", "ppocr-det"])
def test_ppocr_graphs_reach_pytorch_after_normalisation(zoo, fonts, name):
    zoo_model = build(name, zoo)
    original = onnx.load(str(zoo_model.model))
    feeds = feeds_for(zoo_model)
    with pytest.raises(KeyError):  # weights in Constant nodes: onnx2torch alone cannot read it
        _convert(original)
    normalised, report = normalize(original, feeds)
    assert report["opset"] == TARGET_OPSET and report["fixed_shapes"]["x"] == zoo_model.meta["input_shape"]
    assert report["check"]["max_abs_diff"] < 1e-4
    assert "Constant" not in report["op_types"]
    assert _torch_vs_ort(normalised, _samples(normalised, feeds)) < 1e-3


# 100s of MB of fills, or slow
HEAVY_LIGHT = ("vgg19", "bvlc_alexnet", "zfnet512", "densenet121", "inception_v2", "resnet50")


@pytest.mark.parametrize("graph", [pytest.param(g, marks=pytest.mark.slow) if g in HEAVY_LIGHT else g for g in LIGHT])
def test_onnx_light_graphs_reach_pytorch_and_compute_the_same(zoo, graph):
    zoo_model = build(f"onnx-{graph.replace('_', '-')}", zoo)
    feeds = feeds_for(zoo_model)
    normalised, report = normalize(onnx.load(str(zoo_model.model)), feeds)
    assert report["constants_materialized"] > 0 and "ConstantOfShape" not in report["op_types"]
    samples = _samples(normalised, feeds, count=2)
    assert _torch_vs_ort(normalised, samples) < 1e-5
    assert _torch_vs_ort(_random_weights(normalised), samples) < 1e-3  # the same ops on weights that tell


def _auto_pad_graph():
    """Conv / MaxPool / AveragePool / ConvTranspose with SAME_UPPER, SAME_LOWER and VALID on odd sizes."""
    rng = np.random.default_rng(0)

    def weight(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("MaxPool", ["a"], ["b"], kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_LOWER"),
        helper.make_node("Conv", ["b", "w2"], ["c"], kernel_shape=[2, 2], auto_pad="SAME_LOWER"),
        helper.make_node("AveragePool", ["c"], ["d"], kernel_shape=[3, 3], strides=[1, 1], auto_pad="SAME_UPPER"),
        helper.make_node(
            "ConvTranspose", ["d", "w3"], ["e"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"
        ),
        helper.make_node("Conv", ["e", "w4"], ["y"], kernel_shape=[3, 3], auto_pad="VALID"),
    ]
    graph = helper.make_graph(
        nodes,
        "auto_pad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [weight("w1", 4, 3, 3, 3), weight("w2", 4, 4, 2, 2), weight("w3", 4, 2, 3, 3), weight("w4", 2, 2, 3, 3)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_auto_pad_is_made_explicit_as_onnxruntime_computes_it():
    model = _auto_pad_graph()
    x = np.random.default_rng(1).standard_normal((2, 3, 15, 17)).astype(np.float32)
    with pytest.raises(NotImplementedError, match="SAME_UPPER"):
        _convert(model)
    normalised, report = normalize(model, {"x": x})
    assert report["auto_pad_made_explicit"] >= 3  # onnxscript's optimizer rewrites the Conv ones itself
    modes = {a.s for n in normalised.graph.node for a in n.attribute if a.name == "auto_pad"}
    assert modes <= {b"NOTSET"}
    assert _torch_vs_ort(normalised, [{"x": x[:1]}, {"x": x[1:]}]) < 1e-4


def test_explicit_shapes_win_and_missing_ones_are_named():
    model = _auto_pad_graph()
    normalised, report = normalize(model, None, {"x": (1, 3, 32, 40)})
    assert report["fixed_shapes"] == {"x": [1, 3, 32, 40]} and "check" not in report
    assert [d.dim_value for d in normalised.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 32, 40]
    with pytest.raises(InvalidInputError, match=r"'x' has dynamic dimensions \[n, 3, h, w\].*x=1x3x224x224"):
        normalize(model)
    with pytest.raises(InvalidInputError, match="has 4 dimensions"):
        normalize(model, None, {"x": (1, 3, 32)})


def test_a_graph_that_computes_differently_is_refused(zoo, fonts):
    zoo_model = build("ppocr-cls", zoo)
    feeds = feeds_for(zoo_model)
    original = onnx.load(str(zoo_model.model))
    normalised, _ = normalize(original, feeds)
    broken = onnx.ModelProto()
    broken.CopyFrom(normalised)
    matmul = next(n for n in broken.graph.node if n.op_type == "MatMul")  # the classifier: flip its logits
    index, tensor = next((i, t) for i, t in enumerate(broken.graph.initializer) if t.name in matmul.input)
    broken.graph.initializer[index].CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(tensor), tensor.name))
    with pytest.raises(ConversionError, match="computes output 0 differently from the original"):
        compare_in_onnxruntime(original, broken, feeds)


def test_silero_vad_with_its_rate_frozen_reaches_pytorch(zoo):
    """silero_vad.onnx branches on its ``sr`` input (If) around an LSTM: freezing sr folds the If away, the LSTM
    converter does the rest."""
    zoo_model = build("silero-vad-onnx", zoo)
    feeds = {k: v for k, v in feeds_for(zoo_model).items() if k != "sr"}
    normalised, report = normalize(onnx.load(str(zoo_model.model)), feeds, freeze={"sr": np.array(16000)})
    assert "If" not in report["op_types"] and "LSTM" in report["op_types"]
    assert report["frozen_inputs"] == {"sr": 16000}
    assert _torch_vs_ort(normalised, _samples(normalised, feeds)) < 1e-4


def _lstm_graph(direction: str, layout: int):
    rng = np.random.default_rng(2)
    hidden, features, dirs = 5, 4, 2 if direction == "bidirectional" else 1
    inits = [
        numpy_helper.from_array(rng.standard_normal((dirs, 4 * hidden, features)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal((dirs, 4 * hidden, hidden)).astype(np.float32), "R"),
        numpy_helper.from_array(rng.standard_normal((dirs, 8 * hidden)).astype(np.float32), "B"),
    ]
    x_shape, h_shape = ([7, 2, features], [dirs, 2, hidden]) if layout == 0 else ([2, 7, features], [2, dirs, hidden])
    node = helper.make_node(
        "LSTM",
        ["x", "W", "R", "B", "", "h0", "c0"],
        ["y", "yh", "yc"],
        hidden_size=hidden,
        direction=direction,
        layout=layout,
    )
    graph = helper.make_graph(
        [node],
        "lstm",
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
            for n, s in (("x", x_shape), ("h0", h_shape), ("c0", h_shape))
        ],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "yh", "yc")],
        inits,
    )
    feeds = {
        "x": rng.standard_normal(x_shape).astype(np.float32),
        "h0": rng.standard_normal(h_shape).astype(np.float32),
        "c0": rng.standard_normal(h_shape).astype(np.float32),
    }
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), feeds


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_lstm_converter_computes_what_onnxruntime_does(direction):
    model, feeds = _lstm_graph(direction, layout=0)
    normalised, _ = normalize(model, {k: v[None] for k, v in feeds.items()})  # one sample: each input whole
    assert _torch_vs_ort(normalised, [feeds]) < 1e-5


def test_lstm_converter_refuses_what_it_cannot_check():
    model, _ = _lstm_graph("forward", layout=1)  # batch-first: onnxruntime has no kernel for it
    with pytest.raises(NotImplementedError, match="LSTM with layout=1 is not implemented"):
        _convert(model)


@pytest.mark.slow
def test_converted_ppocr_recogniser_exports_with_torch_export(zoo, fonts):
    """onnx2torch's own Reshape/Slice/Squeeze modules branch on their shape tensors, which torch.export (and so
    litert-torch) refuses; the static ones registered here do not."""
    import torch

    zoo_model = build("ppocr-rec", zoo)
    feeds = feeds_for(zoo_model)
    normalised, _ = normalize(onnx.load(str(zoo_model.model)), feeds)
    program = torch.export.export(_convert(normalised), (torch.from_numpy(feeds["x"][:1]),))
    assert program.module()(torch.from_numpy(feeds["x"][:1])).shape == (1, 40, 6625)


def test_a_torch_onnx_export_goes_down_to_opset_17_and_through_torch_export(zoo):
    """torch.onnx writes opset 20 (ReduceMean with axes as an input and noop_with_empty_axes); going down to 17
    must leave a valid graph, and the static converters one that torch.export (litert-torch) takes."""
    import torch

    zoo_model = build("resnet-onnx", zoo)
    feeds = feeds_for(zoo_model)
    normalised, report = normalize(onnx.load(str(zoo_model.model)), feeds)
    assert report["opset_before"] > TARGET_OPSET == report["opset"]
    assert _torch_vs_ort(normalised, _samples(normalised, feeds, count=2)) < 1e-4
    x = torch.from_numpy(feeds["pixel_values"][:1])
    assert torch.export.export(_convert(normalised), (x,)).module()(x).shape == (1, 10)
