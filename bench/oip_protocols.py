"""ModelInfer latency of a build's cloud model over OIP v2 gRPC and HTTP (binary and JSON tensors), on
`sdkgen serve` and, with ``--triton``, on Triton (the nvidia-pytriton wheel's server, python backend; see
tests/oip_venv.py), beside onnxruntime in-process.  The same clients call both servers, one request at a time.

Usage: python bench/oip_protocols.py BUILD_DIR [--rows 1] [--requests 300] [--triton]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from server.gen.inference import grpc_service_pb2 as pb  # noqa: E402
from server.gen.inference import grpc_service_pb2_grpc as rpc  # noqa: E402


def _timed(call, requests: int) -> tuple[float, float]:
    for _ in range(20):
        call()
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def _grpc_call(url: str, cloud: dict, x: np.ndarray):
    stub = rpc.GRPCInferenceServiceStub(grpc.insecure_channel(url))
    request = pb.ModelInferRequest(model_name=cloud["model_name"], model_version=cloud["model_version"])
    request.inputs.add(name=cloud["inputs"][0]["name"], datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    return lambda: stub.ModelInfer(request)


def _http_call(url: str, cloud: dict, x: np.ndarray, binary: bool):
    host, port = url.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port))
    tensor = {"name": cloud["inputs"][0]["name"], "shape": list(x.shape), "datatype": "FP32"}
    outputs = [{"name": o["name"], "parameters": {"binary_data": binary}} for o in cloud["outputs"]]
    path = f"/v2/models/{cloud['model_name']}/versions/{cloud['model_version']}/infer"
    if binary:
        head = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": x.nbytes}}], "outputs": outputs})
        body, headers = head.encode() + x.tobytes(), {"Inference-Header-Content-Length": str(len(head))}
    else:
        body, headers = json.dumps({"inputs": [{**tensor, "data": x.ravel().tolist()}], "outputs": outputs}), {}

    def call():
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        data = response.read()
        assert response.status == 200, data[:300]

    return call


def _measure(name: str, grpc_url: str, http_url: str, cloud: dict, x: np.ndarray, requests: int) -> None:
    for label, call in (
        ("gRPC raw", _grpc_call(grpc_url, cloud, x)),
        ("HTTP binary", _http_call(http_url, cloud, x, True)),
        ("HTTP JSON", _http_call(http_url, cloud, x, False)),
    ):
        p50, p99 = _timed(call, requests)
        print(f"{name:<14} {label:<12} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", type=Path)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--triton", action="store_true")
    args = parser.parse_args()
    import onnxruntime as ort

    from compressor.bundle.manifest import load_manifest
    from server.app import create_server, shutdown
    from server.config import ServerConfig
    from server.inference.repository import ModelRepository

    cloud = load_manifest(args.build / "model-manifest.json")["cloud"]
    shape = [args.rows if d is None else d for d in cloud["inputs"][0]["shape"]]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(args.build / cloud["file"]), options, providers=["CPUExecutionProvider"])
    p50, p99 = _timed(lambda: session.run(None, {cloud["inputs"][0]["name"]: x}), args.requests)
    print(f"{'onnxruntime':<14} {'in-process':<12} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms")
    repository = ModelRepository()
    repository.register(cloud["model_name"], cloud["model_version"], args.build / cloud["file"])
    server, port = create_server("127.0.0.1:0", ServerConfig(http_port=0), repository)
    server.start()
    try:
        _measure("sdkgen serve", f"127.0.0.1:{port}", f"127.0.0.1:{server.rest.port}", cloud, x, args.requests)
    finally:
        shutdown(server, 1)
    if args.triton:
        import triton_server

        from server.triton_repo import TritonOptions, export_repository

        with tempfile.TemporaryDirectory() as work:
            export_repository(
                args.build, Path(work) / "repo", TritonOptions(backend="python", max_batch_size=max(8, args.rows))
            )
            with triton_server.running(Path(work) / "repo", Path(work) / "triton.log") as triton:
                _measure("Triton 2.51", triton.grpc, triton.http, cloud, x, args.requests)


if __name__ == "__main__":
    main()
