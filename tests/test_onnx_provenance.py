"""Shipped ONNX graphs carry no exporter debugging records (node ``metadata_props``, ``doc_string``): smaller files
that compute exactly what they computed before."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

from compressor.converters import ConvertInput, convert
from compressor.converters.onnx import strip_provenance
from compressor.data import SampleData
from compressor.profiles import Format, Precision
from compressor.sources import from_module


def _records(model: onnx.ModelProto) -> int:
    graphs, count = [model.graph], 0
    for graph in graphs:
        for node in graph.node:
            count += len(node.metadata_props) + bool(node.doc_string)
            for attribute in node.attribute:
                graphs.extend([attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs)
    return count


def test_every_onnx_precision_ships_without_the_exporters_records_and_computes_the_same(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 10)
    ).eval()
    x = np.random.default_rng(0).standard_normal((32, 1, 8, 8)).astype(np.float32)
    example = (torch.from_numpy(x[:1]),)
    exported = tmp_path / "torch.onnx"
    torch.onnx.export(model, example, str(exported), dynamo=True, external_data=False)
    assert _records(onnx.load(str(exported))) > 0  # what torch.onnx writes: the test can fail

    job = ConvertInput(from_module(model, example), example, SampleData({"x": x}), tmp_path / "convert",
                       (Precision.FP32, Precision.INT8_FULL))  # fmt: skip
    conversion = convert(Format.ONNX, job)
    artifacts = {a.precision: a for a in conversion.artifacts}
    for artifact in artifacts.values():
        assert artifact.error is None, artifact.error
        assert _records(onnx.load(str(artifact.path))) == 0, artifact.precision
    assert artifacts[Precision.FP32].path.stat().st_size < exported.stat().st_size

    def run(path) -> np.ndarray:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x[:1]})[0]

    np.testing.assert_array_equal(run(artifacts[Precision.FP32].path), run(exported))
    with torch.no_grad():
        np.testing.assert_allclose(run(artifacts[Precision.FP32].path), model(example[0]).numpy(), atol=1e-5)


def test_records_inside_the_branches_of_an_if_go_too(tmp_path):
    def branch(name: str, value: float) -> onnx.GraphProto:
        node = helper.make_node(
            "Constant", [], [f"{name}_out"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [value])
        )
        node.doc_string = "from a stack trace"
        helper.set_metadata_props(node, {"pkg.torch.onnx.stack_trace": "File model.py, line 1"})
        return helper.make_graph(
            [node], name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1])]
        )

    choose = helper.make_node("If", ["flag"], ["y"], then_branch=branch("then", 1.0), else_branch=branch("else", 2.0))
    graph = helper.make_graph(
        [choose], "g", [helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )  # fmt: skip
    path = tmp_path / "if.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert _records(onnx.load(str(path))) == 4
    assert strip_provenance(path) > 0
    assert _records(onnx.load(str(path))) == 0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.run(None, {"flag": np.array(False)})[0].tolist() == [2.0]
