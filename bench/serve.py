"""ModelInfer latency (p50/p99) and throughput at concurrency 1, 8 and 32 for the digits model, beside
onnxruntime called in-process on the same ONNX file, in one run.

    .venv/bin/python bench/serve.py [--seconds 3] [--onnx MODEL.onnx] [--max-batch 32 [--batch-window-ms 2]]

The server runs in its own process (as `sdkgen serve` does); the load comes from client threads, one gRPC
channel each, sending one sample per request with raw_input_contents.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples" / "digits")]
LEVELS = (1, 8, 32)


def export_digits(dest: Path) -> Path:
    """The trained example model (examples/digits/model.pt2) as fp32 ONNX with a dynamic batch."""
    import torch

    pt2 = ROOT / "examples" / "digits" / "model.pt2"
    if pt2.exists():  # an ExportedProgram with a dynamic batch already
        torch.onnx.export(torch.export.load(str(pt2)), (torch.zeros(1, 1, 8, 8),), str(dest), dynamo=True)
        return dest
    from model import DigitsCNN  # same architecture, untrained: latency does not depend on the weights

    torch.onnx.export(
        DigitsCNN().eval(),
        (torch.zeros(1, 1, 8, 8),),
        str(dest),
        input_names=["x"],
        dynamic_axes={"x": {0: "batch"}},
        dynamo=False,
    )
    return dest


def serve(onnx: str, max_batch: int, window_ms: float) -> None:
    from server.app import create_server
    from server.config import ServerConfig
    from server.inference.repository import ModelRepository

    repository = ModelRepository()
    repository.register("digits", "1", onnx)
    config = ServerConfig(max_batch=max_batch, batch_window_ms=window_ms)
    server, port = create_server("127.0.0.1:0", config, repository=repository)
    server.start()
    print(port, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.stop(0)


def measure(call, concurrency: int, seconds: float) -> tuple[float, float, float]:
    """Run ``call()`` from ``concurrency`` threads for ``seconds``; return p50 ms, p99 ms, calls per second."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    stop = time.perf_counter() + seconds

    def loop(mine: list[float], fn) -> None:
        while (start := time.perf_counter()) < stop:
            fn()
            mine.append(time.perf_counter() - start)

    threads = [threading.Thread(target=loop, args=(latencies[i], call(i))) for i in range(concurrency)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    flat = np.array([x for xs in latencies for x in xs]) * 1e3
    return float(np.percentile(flat, 50)), float(np.percentile(flat, 99)), len(flat) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement (default 3)")
    parser.add_argument("--onnx", type=Path, help="ONNX model to serve (default: export examples/digits)")
    parser.add_argument("--max-batch", type=int, default=1, help="server's dynamic batching limit (default 1: off)")
    parser.add_argument("--batch-window-ms", type=float, default=0.0, help="server batching window (default 0)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.max_batch, args.batch_window_ms)

    import grpc
    import onnxruntime as ort

    from server.gen.inference import grpc_service_pb2 as pb
    from server.gen.inference import grpc_service_pb2_grpc as rpc

    onnx = args.onnx or export_digits(Path(tempfile.mkdtemp()) / "digits.onnx")
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            str(onnx),
            "--max-batch",
            str(args.max_batch),
            "--batch-window-ms",
            str(args.batch_window_ms),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    address = f"127.0.0.1:{child.stdout.readline().strip()}"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)
    tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype="FP32", shape=x.shape)
    request = pb.ModelInferRequest(model_name="digits", inputs=[tensor], raw_input_contents=[x.tobytes()])

    def grpc_call(_i):
        stub = rpc.GRPCInferenceServiceStub(grpc.insecure_channel(address))
        stub.ModelInfer(request)  # connect before timing
        return lambda: stub.ModelInfer(request)

    def local_call(_i):
        return lambda: session.run(None, {name: x})

    batching = (
        f"server batching up to {args.max_batch} within {args.batch_window_ms:g} ms"
        if args.max_batch > 1
        else "no server batching"
    )
    print(f"digits CNN, batch 1, {args.seconds:g} s per cell, 1 onnxruntime intra-op thread, {batching}")
    print(f"{'path':<28}{'concurrency':>12}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}")
    try:
        for concurrency in LEVELS:
            for label, call in (("gRPC ModelInfer (server)", grpc_call), ("onnxruntime in-process", local_call)):
                p50, p99, rate = measure(call, concurrency, args.seconds)
                print(f"{label:<28}{concurrency:>12}{p50:>10.3f}{p99:>10.3f}{rate:>10.0f}")
    finally:
        child.stdin.close()
        child.wait(10)


if __name__ == "__main__":
    main()
