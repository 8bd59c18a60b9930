"""OIP v2 serving over loopback: stock tritonclient, our stubs, and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from support import require

from server.app import create_server
from server.gen.inference import grpc_service_pb2 as pb
from server.gen.inference import grpc_service_pb2_grpc as rpc
from server.inference.repository import ModelRepository

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory, digits_module):
    """The digits CNN as fp32 ONNX with a dynamic batch dimension."""
    import torch

    path = tmp_path_factory.mktemp("onnx") / "digits.onnx"
    torch.onnx.export(
        digits_module.eval(),
        (torch.zeros(1, 1, 8, 8),),
        str(path),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    return path


@pytest.fixture(scope="module")
def served(digits_onnx):
    repository = ModelRepository()
    repository.register("digits", "1", digits_onnx)
    server, port = create_server("127.0.0.1:0", repository=repository)
    server.start()
    yield f"127.0.0.1:{port}", repository
    server.stop(0)


@pytest.fixture(scope="module")
def stub(served):
    with grpc.insecure_channel(served[0]) as channel:
        yield rpc.GRPCInferenceServiceStub(channel)


def _reference(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_tritonclient_gets_onnxruntime_outputs(served, digits_onnx, digits_split, tmp_path):
    require(
        subprocess.run([sys.executable, "-c", "import tritonclient.grpc"], capture_output=True).returncode == 0,
        "tritonclient[grpc] is not installed (make setup installs it)",
    )
    x = digits_split[2][:16]
    np.savez(tmp_path / "in.npz", x=x)
    done = subprocess.run(
        [
            sys.executable,
            str(HERE / "triton_call.py"),
            served[0],
            "digits",
            str(tmp_path / "in.npz"),
            str(tmp_path / "out.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["live"] and report["ready"]
    assert report["metadata"]["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "1", "8", "8"]}]
    got = np.load(tmp_path / "out.npz")["logits"]
    np.testing.assert_allclose(got, _reference(digits_onnx, x), rtol=1e-5, atol=1e-5)


def _request(x: np.ndarray, *, model="digits", datatype="FP32", shape=None, raw=None, name="x"):
    tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape or list(x.shape))
    return pb.ModelInferRequest(
        model_name=model, inputs=[tensor], raw_input_contents=[x.tobytes() if raw is None else raw]
    )


def test_typed_contents_and_raw_agree(stub, digits_onnx):
    x = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=x.shape)
    tensor.contents.fp32_contents.extend(x.ravel())
    typed = stub.ModelInfer(pb.ModelInferRequest(model_name="digits", id="r1", inputs=[tensor]))
    raw = stub.ModelInfer(_request(x))
    assert typed.id == "r1" and typed.outputs[0].name == "logits" and list(typed.outputs[0].shape) == [3, 10]
    assert typed.raw_output_contents[0] == raw.raw_output_contents[0]
    got = np.frombuffer(raw.raw_output_contents[0], np.float32).reshape(3, 10)
    np.testing.assert_allclose(got, _reference(digits_onnx, x), rtol=1e-5, atol=1e-5)


X = np.zeros((2, 1, 8, 8), np.float32)
BAD_REQUESTS = {
    "unknown model": (
        _request(X, model="nope"),
        grpc.StatusCode.NOT_FOUND,
        r"no model named 'nope'.*served models: digits",
    ),
    "unknown version": (
        pb.ModelInferRequest(model_name="digits", model_version="7"),
        grpc.StatusCode.NOT_FOUND,
        r"no version '7'; served versions: 1",
    ),
    "wrong shape": (
        _request(X, shape=[2, 1, 8, 9]),
        grpc.StatusCode.INVALID_ARGUMENT,
        r"shape \[2, 1, 8, 9\]; the model expects x FP32\[-1, 1, 8, 8\]",
    ),
    "wrong rank": (_request(X, shape=[2, 64]), grpc.StatusCode.INVALID_ARGUMENT, r"shape \[2, 64\]"),
    "wrong dtype": (
        _request(X.astype(np.float64), datatype="FP64"),
        grpc.StatusCode.INVALID_ARGUMENT,
        r"datatype FP64; the model expects x FP32",
    ),
    "short bytes": (
        _request(X, raw=X.tobytes()[:-4]),
        grpc.StatusCode.INVALID_ARGUMENT,
        r"carries 508 bytes in raw_input_contents; .* needs 512",
    ),
    "unknown input": (_request(X, name="y"), grpc.StatusCode.INVALID_ARGUMENT, r"no input 'y'; its inputs: x FP32"),
    "missing input": (
        pb.ModelInferRequest(model_name="digits"),
        grpc.StatusCode.INVALID_ARGUMENT,
        r"needs input\(s\) x FP32",
    ),
    "unknown output": (
        pb.ModelInferRequest(
            model_name="digits",
            inputs=_request(X).inputs,
            raw_input_contents=[X.tobytes()],
            outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="probs")],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        r"no output\(s\) \['probs'\]",
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_infer_requests_get_clear_status_and_server_keeps_serving(stub, case):
    request, code, message = BAD_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request)
    assert caught.value.code() == code
    assert __import__("re").search(message, caught.value.details()), caught.value.details()
    assert len(stub.ModelInfer(_request(X)).raw_output_contents[0]) == 2 * 10 * 4


def test_liveness_and_metadata(stub):
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="digits")).ready
    assert not stub.ModelReady(pb.ModelReadyRequest(name="other")).ready
    assert stub.ServerMetadata(pb.ServerMetadataRequest()).name == "edgeforge"
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="digits"))
    assert list(meta.versions) == ["1"] and [o.name for o in meta.outputs] == ["logits"]


def test_health_service_reports_serving(served):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(served[0]) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        assert check(health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService")).status == 1


def test_dynamic_batching_returns_the_unbatched_results(digits_onnx, digits_split):
    """Concurrent requests of 1-3 rows share onnxruntime runs (--max-batch) and each gets its own rows back."""
    from concurrent.futures import ThreadPoolExecutor

    from server.config import ServerConfig

    repository = ModelRepository()
    model = repository.register("digits", "1", digits_onnx)
    runs, run = [], model.run
    model.run = lambda feeds, outputs: runs.append(len(feeds["x"])) or run(feeds, outputs)
    server, port = create_server("127.0.0.1:0", ServerConfig(max_batch=16, batch_window_ms=50), repository=repository)
    server.start()
    x = digits_split[2][:24]
    slices = [(i, i + n) for i, n in zip(range(0, 24, 2), [1, 2, 3, 2] * 3)]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, ThreadPoolExecutor(len(slices)) as pool:
            infer = rpc.GRPCInferenceServiceStub(channel).ModelInfer
            replies = list(pool.map(lambda s: infer(_request(x[s[0] : s[1]])), slices))
    finally:
        server.stop(0)
    for (a, b), reply in zip(slices, replies):
        got = np.frombuffer(reply.raw_output_contents[0], np.float32).reshape(b - a, 10)
        np.testing.assert_allclose(got, _reference(digits_onnx, x[a:b]), rtol=1e-6, atol=1e-6)
    assert sum(runs) == sum(b - a for a, b in slices) and len(runs) < len(slices) and max(runs) <= 16, runs


def test_a_batching_thread_ends_when_its_model_is_idle_and_comes_back_on_demand(digits_onnx, digits_split):
    """Replaced model versions must not keep a thread (and their session) forever."""
    import threading
    import time

    from server.inference.batcher import Batcher

    model = ModelRepository().register("digits", "1", digits_onnx)
    batcher = Batcher(max_batch=8, idle_exit_s=0.2)
    before = set(threading.enumerate())  # other tests' servers may still have their own batching threads
    x, names = digits_split[2][:2], [o.name for o in model.outputs]
    expected = _reference(digits_onnx, x)
    np.testing.assert_allclose(batcher.run(model, {"x": x}, names)[0], expected, rtol=1e-6, atol=1e-6)
    assert batcher.active_models() == 1

    def threads() -> list:
        return [t for t in set(threading.enumerate()) - before if t.name == "batcher-digits"]

    deadline = time.monotonic() + 10
    while (batcher.active_models() or threads()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert batcher.active_models() == 0 and not threads()
    np.testing.assert_allclose(batcher.run(model, {"x": x}, names)[0], expected, rtol=1e-6, atol=1e-6)
    assert batcher.active_models() == 1
