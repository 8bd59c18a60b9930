"""A second, independent OIP v2 server: Triton Inference Server itself (from PyPI's nvidia-pytriton wheel, in an
isolated venv), serving what `sdkgen export-triton` wrote.

Triton's HTTP and gRPC front ends, its model repository and its config parser are NVIDIA's code, not ours: the
stock clients and the generated Python SDK's cloud path must get onnxruntime's outputs from it, unchanged.  The
wheel's server has only the Python backend, so the served repository is exported with ``--backend python``; the
default ``onnxruntime`` export is checked to pass Triton's own config validation up to loading the backend library.
"""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pytest
import triton_server
from test_oip_rest import call_with_tritonclient, onnxruntime_outputs, sample_inputs, served_models
from test_sdk_python import _predictor

from server.triton_repo import TritonOptions, export_repository


@pytest.fixture(scope="module")
def triton(sdk_build, split_sdk_build, tmp_path_factory):
    """Triton serving the digits build's cloud model and the split build's tail (python backend, dynamic batching)."""
    root = tmp_path_factory.mktemp("triton")
    options = TritonOptions(backend="python", dynamic_batching=True, max_queue_delay_us=100)
    export_repository(sdk_build.out_dir, root / "repo", options)
    export_repository(split_sdk_build.out_dir, root / "split", options)
    shutil.move(root / "split" / "digits_classifier-tail", root / "repo")  # both builds name their cloud model alike
    with triton_server.running(root / "repo", root / "triton.log") as server:
        yield server


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("kind", ["cloud", "tail"])
def test_stock_clients_get_onnxruntime_outputs_from_triton(
    triton, sdk_build, split_sdk_build, digits_samples, tmp_path, protocol, kind
):
    section, path = served_models(sdk_build, split_sdk_build)[kind]
    feeds = sample_inputs(kind, digits_samples)
    url = triton.http if protocol == "http" else triton.grpc
    report, got = call_with_tritonclient(
        protocol, url, section["model_name"], section["model_version"], feeds, tmp_path
    )
    assert (report["live"], report["ready"], report["other_ready"]) == (True, True, False)
    assert [int(d) for d in report["metadata"]["inputs"][0]["shape"]] == [
        -1 if d is None else d for d in section["inputs"][0]["shape"]
    ]
    for name, array in onnxruntime_outputs(path, feeds).items():
        assert got[name].dtype == array.dtype
        np.testing.assert_allclose(got[name], array, rtol=1e-6, atol=1e-6)


def test_python_sdk_cloud_path_against_triton(triton, sdk_modules, sdk_build, digits_samples):
    """The generated SDK's OIP gRPC call, unchanged, answered by Triton: the fp32 cloud model's outputs, in mode
    cloud and on low confidence (the SDK's private descriptor pool lets it share this process with our stubs)."""
    from digits_classifier.cloud import OipCloudClient

    x = digits_samples[0][:4]
    expected = onnxruntime_outputs(sdk_build.out_dir / "cloud" / "model.onnx", {"x": x})["linear_1"]
    model_bytes = (sdk_build.out_dir / "model.tflite").read_bytes()
    for mode, threshold, reason in (("cloud", 0.6, "mode_cloud"), ("edge", 1.0, "low_confidence")):
        manifest = copy.deepcopy(sdk_build.manifest)
        manifest["policy"].update(mode=mode, confidence_threshold=threshold)
        predictor = _predictor(sdk_modules, manifest, OipCloudClient(triton.grpc, manifest["cloud"]), model_bytes)
        results = [predictor.predict([sample]) for sample in x]
        assert [(r.source, r.fallback_reason, r.cloud_error) for r in results] == [("cloud", reason, None)] * 4
        np.testing.assert_allclose(np.concatenate([r.outputs[0] for r in results]), expected, rtol=1e-5, atol=1e-5)


def test_triton_accepts_the_onnxruntime_export_up_to_its_missing_backend(split_sdk_build, tmp_path):
    """Triton validates every config.pbtxt when it polls the repository and drops one it rejects; ours reach the
    load step, which stops only because this Triton build has no ONNX Runtime backend library."""
    repo = tmp_path / "repo"
    export_repository(split_sdk_build.out_dir, repo)
    control = repo / "broken-control"  # a config Triton must reject: proves the check below can fail
    shutil.copytree(repo / "digits_classifier", control)
    text = (control / "config.pbtxt").read_text().replace('name: "digits_classifier"', 'name: "broken-control"')
    (control / "config.pbtxt").write_text(
        text.replace("dims: [ 1, 8, 8 ]", "dims: [ 1, 8, 8 ] reshape: { shape: [ 7 ] }")
    )
    with triton_server.running(repo, tmp_path / "triton.log", all_models_load=False) as server:
        index = {m["name"]: m for m in server.repository_index()}
    missing = "unable to find backend library for backend 'onnxruntime'"
    for name in ("digits_classifier", "digits_classifier-tail"):
        assert index[name]["version"] == "1" and index[name]["state"] == "UNAVAILABLE"
        assert missing in index[name]["reason"], index[name]
    assert "state" not in index["broken-control"]  # rejected at validation, never loaded
    assert "different size for dims and reshape" in (tmp_path / "triton.log").read_text()
