"""fp16 ONNX in the form a profile's runtime runs fast: fp16 arithmetic (GPU, TensorRT) or fp16 storage only (CPU)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch

from compressor.converters.onnx import fp16_weights
from compressor.profiles import get_profile


def _conv_net(path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(16 * 8 * 8, 10)
    ).eval()
    torch.onnx.export(model, (torch.zeros(1, 3, 8, 8),), str(path), dynamo=True, external_data=False)


def test_fp16_weights_halve_the_file_and_run_fp32_kernels_after_the_casts_fold(tmp_path):
    _conv_net(tmp_path / "fp32.onnx")
    onnx.save(fp16_weights(onnx.load(str(tmp_path / "fp32.onnx"))), str(tmp_path / "fp16.onnx"))
    stored = onnx.load(str(tmp_path / "fp16.onnx"))
    assert {i.data_type for i in stored.graph.initializer if "weight" in i.name} == {onnx.TensorProto.FLOAT16}
    assert (tmp_path / "fp16.onnx").stat().st_size < 0.6 * (tmp_path / "fp32.onnx").stat().st_size

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "loaded.onnx")  # the graph the session runs
    session = ort.InferenceSession(str(tmp_path / "fp16.onnx"), options, providers=["CPUExecutionProvider"])
    loaded = onnx.load(str(tmp_path / "loaded.onnx"))
    assert "Cast" not in {n.op_type for n in loaded.graph.node}  # folded into fp32 constants
    assert {i.data_type for i in loaded.graph.initializer if i.dims} <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}

    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    reference = ort.InferenceSession(str(tmp_path / "fp32.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    want, got = reference.run(None, {name: x})[0], session.run(None, {name: x})[0]
    assert got.dtype == np.float32 and np.allclose(got, want, atol=1e-2) and not np.array_equal(got, want)


def test_cpu_profiles_keep_fp16_to_the_weights_and_gpu_profiles_compute_in_it():
    assert get_profile("host").accepts.onnx_fp16 == "weights"
    assert get_profile("jetson-orin-nano").accepts.onnx_fp16 == "compute"


def test_fp16_weights_reach_the_initializers_of_subgraphs(tmp_path):
    """silero-vad keeps its weights inside the branches of an ``If``: they are halved too, and still folded."""
    from onnx import TensorProto, helper, numpy_helper

    weight = np.arange(4, dtype=np.float32).reshape(1, 4) / 3

    def branch(op: str, name: str):
        return helper.make_graph(
            [helper.make_node(op, ["x", f"{name}_w"], [f"{name}_y"])],
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [1, 4])],
            [numpy_helper.from_array(weight, f"{name}_w")],
        )

    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=branch("Mul", "then"), else_branch=branch("Add", "else"))],
        "branches",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = fp16_weights(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    branches = [a.g for a in model.graph.node[0].attribute]
    assert [i.data_type for g in branches for i in g.initializer] == [TensorProto.FLOAT16] * 2
    onnx.save(model, str(tmp_path / "if.onnx"))
    session = ort.InferenceSession(str(tmp_path / "if.onnx"), providers=["CPUExecutionProvider"])
    x = np.ones((1, 4), np.float32)
    half = weight.astype(np.float16).astype(np.float32)
    assert np.array_equal(session.run(None, {"x": x, "cond": np.array(True)})[0], x * half)
    assert np.array_equal(session.run(None, {"x": x, "cond": np.array(False)})[0], x + half)


def test_fp16_weights_reach_weights_kept_in_constant_nodes(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    weight = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(weight, "w")),
            helper.make_node("Constant", [], ["eps"], value=numpy_helper.from_array(np.array(1e-9, np.float32))),
            helper.make_node("Add", ["x", "w"], ["s"]),
            helper.make_node("Add", ["s", "eps"], ["y"]),
        ],
        "constants",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
    )
    model = fp16_weights(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    values = {n.output[0]: n.attribute[0].t.data_type for n in model.graph.node if n.op_type == "Constant"}
    assert values == {"w__fp16": TensorProto.FLOAT16, "eps": TensorProto.FLOAT}  # scalars stay exact
    onnx.save(model, str(tmp_path / "c.onnx"))
    x = np.zeros((2, 4), np.float32)
    got = ort.InferenceSession(str(tmp_path / "c.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.allclose(got, weight.astype(np.float16).astype(np.float32) + 1e-9)
