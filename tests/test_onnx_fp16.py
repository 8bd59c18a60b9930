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
