"""Every accepted model format reaches its artifacts; every bad input gets a clear error and writes nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compressor import CompressOptions, Precision, compress
from compressor.data import match_inputs, read_npz
from compressor.errors import (
    DataMismatchError,
    InvalidInputError,
    UnknownNameError,
    UnsupportedModelError,
)
from compressor.sources import load_model

# select="size": these tests check routes, not latency; "balanced" ranks by host timings, which a loaded machine
# reorders (int8-full of this tiny CNN is no faster than fp32 on x86 LiteRT).
FAST = dict(latency_repeats=3, latency_warmup=1, select="size")


@pytest.fixture(scope="module")
def digits_data(digits_files):
    return digits_files / "data.npz"


@pytest.fixture(scope="module")
def torchscript_file(digits_module, digits_split, tmp_path_factory):
    path = tmp_path_factory.mktemp("ts") / "model.pt"
    torch.jit.save(torch.jit.trace(digits_module, torch.from_numpy(digits_split[2][:1])), str(path))
    return path


@pytest.fixture(scope="module")
def onnx_file(digits_module, digits_split, tmp_path_factory):
    """An ONNX file as users typically have them: the TorchScript-based exporter, opset 17."""
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    torch.onnx.export(
        digits_module,
        (torch.from_numpy(digits_split[2][:1]),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
    return path


@pytest.fixture(scope="module")
def keras_files(digits_split, tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    x_train, y_train, x_test, y_test = digits_split
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train.transpose(0, 2, 3, 1), y_train, epochs=5, verbose=0)
    root = tmp_path_factory.mktemp("keras")
    model.save(root / "model.keras")
    np.savez(root / "data.npz", image=x_test[:100].transpose(0, 2, 3, 1), labels=y_test[:100])
    return root


def _check(result, fmt: str, precision: str):
    report = result.report
    chosen = report["artifacts"][report["selected_by_format"][fmt]]
    assert chosen["precision"] == precision
    assert chosen["metrics"]["top1_agreement"] >= 0.95
    assert chosen["metrics"]["cosine_mean"] >= 0.98
    assert (result.out_dir / f"model.{fmt}").stat().st_size == chosen["size_bytes"]
    return report


def test_exported_program_to_onnx_profile(digits_files, digits_data, tmp_path):
    result = compress(
        digits_files / "model.pt2",
        "jetson-orin-nano",
        tmp_path / "o",
        data=digits_data,
        options=CompressOptions(**FAST),
    )
    report = _check(result, "onnx", "fp16")
    assert report["source"]["format"] == "pt2" and report["source"]["inputs"][0]["shape"] == [None, 1, 8, 8]


def test_torchscript_reaches_tflite_and_onnx(torchscript_file, digits_data, tmp_path):
    options = CompressOptions(precisions=(Precision.INT8_DYNAMIC,), **FAST)
    result = compress(torchscript_file, "host", tmp_path / "o", data=digits_data, options=options)
    _check(result, "tflite", "int8-dynamic")
    _check(result, "onnx", "int8-dynamic")
    assert result.report["source"]["format"] == "torchscript"


def test_torchscript_without_data_asks_for_it(torchscript_file, tmp_path):
    with pytest.raises(InvalidInputError, match=r"records no input shapes; pass sample data \(--data"):
        compress(torchscript_file, "pixel-8", tmp_path / "o")


def test_onnx_reaches_tflite_through_onnx2torch(onnx_file, digits_split, tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, image=digits_split[2][:100], labels=digits_split[3][:100])
    result = compress(
        onnx_file,
        "pixel-8",
        tmp_path / "o",
        data=data,
        options=CompressOptions(precisions=(Precision.FP32, Precision.INT8_FULL), **FAST),
    )
    _check(result, "tflite", "int8-full")
    fp32 = next(a for a in result.report["artifacts"] if a["precision"] == "fp32")
    assert fp32["metrics"]["max_abs_error"] < 1e-3  # the ONNX -> PyTorch -> TFLite route is exact up to float noise


def test_onnx_to_onnx_quantizes_the_submitted_graph(onnx_file, digits_data, tmp_path):
    # 'x' names the single input whatever the model calls it
    result = compress(onnx_file, "jetson-orin-nano", tmp_path / "o", data=digits_data, options=CompressOptions(**FAST))
    _check(result, "onnx", "fp16")


@pytest.mark.slow
def test_keras_reaches_tflite(keras_files, tmp_path):
    result = compress(
        keras_files / "model.keras",
        "raspberry-pi-5",
        tmp_path / "o",
        data=keras_files / "data.npz",
        options=CompressOptions(precisions=(Precision.INT8_FULL,), **FAST),
    )
    report = _check(result, "tflite", "int8-full")
    assert report["source"]["macs"] > 0 and report["source"]["layout"] == "NHWC"


def test_keras_to_onnx_profile_says_what_to_do(keras_files, tmp_path):
    with pytest.raises(Exception, match="Keras models reach TFLite only here; convert the model to ONNX first"):
        compress(keras_files / "model.keras", "jetson-orin-nano", tmp_path / "o", data=keras_files / "data.npz")
    assert not (tmp_path / "o").exists()


def test_in_memory_module(digits_module, digits_split, tmp_path):
    x = digits_split[2][:50]
    result = compress(
        digits_module,
        "galaxy-s24",
        tmp_path / "o",
        example_inputs=(torch.from_numpy(x[:1]),),
        data={"x": x, "labels": digits_split[3][:50]},
        options=CompressOptions(**FAST),
    )
    _check(result, "tflite", result.report["artifacts"][result.report["selected"]]["precision"])
    assert result.report["source"]["format"] == "module"


def test_without_data_uses_seeded_inputs_and_cosine_gate(digits_files, tmp_path):
    result = compress(
        digits_files / "model.pt2",
        "pixel-8",
        tmp_path / "o",
        options=CompressOptions(precisions=(Precision.FP16,), **FAST),
    )
    assert result.report["data"]["synthetic"] and result.report["gate"]["metric"] == "cosine_mean"


# ---- bad input -------------------------------------------------------------------------------


def test_pickled_module_and_state_dict_are_refused_unread(digits_module, tmp_path, monkeypatch):
    import pickle

    calls = []
    monkeypatch.setattr(pickle, "load", lambda *a, **k: calls.append(a))
    for name, obj in (
        ("module.pt", digits_module),
        ("weights.pth", digits_module.state_dict()),
        ("legacy.pt", digits_module.state_dict()),
    ):
        path = tmp_path / name
        torch.save(obj, path, _use_new_zipfile_serialization=name != "legacy.pt")
        with pytest.raises(
            UnsupportedModelError, match=r"pickled PyTorch object .* never unpickles it. Submit an ExportedProgram"
        ):
            load_model(path)
    assert not calls


@pytest.mark.parametrize(
    "name, content, pattern",
    [
        ("model.pt2", b"PK\x03\x04truncated", r"model\.pt2 is not a readable ExportedProgram"),
        ("model.onnx", b"\x08\x07garbage", r"model\.onnx is not a valid ONNX model"),
        ("model.keras", b"not a zip", r"model\.keras is not a loadable Keras model"),
        ("model.h5", b"\x89HDF", r"unsupported suffix '\.h5'; accepted formats: \.pt2"),
    ],
)
def test_corrupt_or_unsupported_files_name_the_file_and_formats(tmp_path, name, content, pattern):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnsupportedModelError, match=pattern):
        load_model(path)


def test_truncated_exported_program(digits_files, tmp_path):
    path = tmp_path / "cut.pt2"
    path.write_bytes((digits_files / "model.pt2").read_bytes()[:5000])
    with pytest.raises(UnsupportedModelError, match="cut.pt2 is not a readable ExportedProgram"):
        load_model(path)


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(
        InvalidInputError, match="holds object arrays, which can only be read by unpickling; EdgeForge never unpickles"
    ):
        read_npz(path)


def test_data_mismatches_show_both_sides(digits_files):
    source = load_model(digits_files / "model.pt2")
    x = np.zeros((4, 1, 8, 8), np.float32)
    with pytest.raises(
        DataMismatchError, match=r"arrays \['image'\] .* model takes inputs 'x' \[\?, 1, 8, 8\] float32"
    ):
        match_inputs({"image": x}, source.inputs, "data file d.npz")
    with pytest.raises(
        DataMismatchError, match=r"shape \[4, 1, 8, 9\] .* does not match model input 'x' \[\?, 1, 8, 8\]"
    ):
        match_inputs({"x": np.zeros((4, 1, 8, 9), np.float32)}, source.inputs, "d.npz")
    with pytest.raises(
        DataMismatchError, match=r"dtype int64 cannot be used for model input 'x' .* save it as float32"
    ):
        match_inputs({"x": np.zeros((4, 1, 8, 8), np.int64)}, source.inputs, "d.npz")
    with pytest.raises(DataMismatchError, match="'labels' must be a 1-D integer array"):
        match_inputs({"x": x, "labels": np.zeros(3)}, source.inputs, "d.npz")
    matched = match_inputs({"x": x.astype(np.float64)}, source.inputs, "d.npz")
    assert matched.inputs["x"].dtype == np.float32


def test_unknown_profile_before_any_work(digits_files, tmp_path):
    with pytest.raises(UnknownNameError, match="known profiles: coral-edgetpu, galaxy-s24"):
        compress(digits_files / "model.pt2", "nokia-3310", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_output_dir_with_user_files_is_not_overwritten(digits_files, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(InvalidInputError, match="does not hold an EdgeForge build"):
        compress(digits_files / "model.pt2", "pixel-8", out, data=digits_files / "data.npz")
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def _stateful_onnx(path):
    """y = x + k * state[0], next_state = k * state: a streaming model's state [2, N, 4] and a scalar input."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Gather", ["state", "zero"], ["first"], axis=0),
        helper.make_node("Mul", ["first", "k"], ["scaled"]),
        helper.make_node("Add", ["x", "scaled"], ["y"]),
        helper.make_node("Mul", ["state", "k"], ["next_state"]),
    ]
    graph = helper.make_graph(
        nodes,
        "stateful",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "N", 4]),
            helper.make_tensor_value_info("k", TensorProto.FLOAT, []),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("next_state", TensorProto.FLOAT, [2, "N", 4]),
        ],
        [helper.make_tensor("zero", TensorProto.INT64, [], [0])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_whole_inputs_per_sample_feed_states_and_scalars(tmp_path):
    """A state whose batch is not its first axis, and a scalar, are given whole under the sample axis; every
    runner feeds ``array[i]`` for them and stacks each sample's whole outputs."""
    from compressor.runtimes import OnnxRunner

    _stateful_onnx(tmp_path / "m.onnx")
    runner = OnnxRunner(tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    x, state = rng.standard_normal((5, 4), np.float32), rng.standard_normal((5, 2, 1, 4), np.float32)
    k = np.arange(5, dtype=np.float32)
    data = match_inputs({"x": x, "state": state, "k": k}, runner.inputs, "data file d.npz")
    y, next_state = runner.run(data.inputs)
    assert next_state.shape == (5, 2, 1, 4) and np.allclose(next_state, state * k[:, None, None, None])
    assert np.allclose(y.reshape(5, 4), x + k[:, None] * state[:, 0, 0])
    runner.bind(data.take(0, 1).inputs)()  # one sample, as latency is measured


def test_whole_inputs_refuse_labels_and_wrong_shapes(tmp_path):
    from compressor.runtimes import OnnxRunner

    _stateful_onnx(tmp_path / "m.onnx")
    specs = OnnxRunner(tmp_path / "m.onnx").inputs
    x, k = np.zeros((3, 4), np.float32), np.zeros(3, np.float32)
    with pytest.raises(DataMismatchError, match=r"'labels' needs samples on the inputs' batch axis, but state"):
        match_inputs({"x": x, "state": np.zeros((3, 2, 1, 4), np.float32), "k": k, "labels": np.zeros(3)}, specs, "d")
    with pytest.raises(DataMismatchError, match=r"shape \[3, 3, 1, 4\] .* does not match model input 'state'"):
        match_inputs({"x": x, "state": np.zeros((3, 3, 1, 4), np.float32), "k": k}, specs, "d")
    with pytest.raises(DataMismatchError, match=r"or each sample is a whole input"):
        match_inputs(
            {"x": x, "state": np.zeros((3, 2, 1, 4), np.float32), "k": np.zeros((3, 2), np.float32)}, specs, "d"
        )
