"""Load test on loopback: many ModelInfer clients and compression jobs at once, stalled streams from one tenant.

    .venv/bin/python bench/load.py [--clients 200] [--seconds 60] [--jobs 2] [--stalled 16]

The server runs in its own process with the defaults of `sdkgen serve` (sandboxed jobs, admission limits),
two tenants' tokens and the digits CNN served as ONNX.  Three phases, figures printed at the end:

1. unloaded: one "victim" client calls ModelInfer back to back; its p99 is the reference;
2. stalled: one tenant opens ``--stalled`` SubmitJob uploads and sends nothing more; the victim measures again
   (criterion: p99 at most 2x the unloaded p99; the server admits 4 streams per tenant and refuses the rest);
3. load: ``--clients`` threads (one channel each) call ModelInfer for ``--seconds`` while ``--jobs`` digits builds
   run; every status is counted (criterion: no error but explicit RESOURCE_EXHAUSTED) and the server's resident
   memory is sampled every second (criterion: after the first 10 s it stays within ``--memory-bound-mb`` of
   its level then).

Exit status 1 when a criterion fails.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples" / "digits")]
TOKENS = {"jobs": "jobs-build", "victim": "victim-infer", "load": "load-infer", "stall": "stall-build"}


def prepare(work: Path) -> dict:
    """The digits CNN as .pt2 (for the jobs) and ONNX (served), with sample data."""
    import torch
    from model import DigitsCNN, load_digits_split, train

    x_train, y_train, x_test, y_test = load_digits_split()
    torch.manual_seed(0)
    module = train(DigitsCNN(width=8), x_train, y_train, epochs=4).eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    example = (torch.from_numpy(x_test[:2]),)
    torch.export.save(torch.export.export(module, example, dynamic_shapes={"x": {0: batch}}), work / "model.pt2")
    np.savez(work / "data.npz", x=x_test[:64], labels=y_test[:64])
    torch.onnx.export(
        module, example, str(work / "digits.onnx"), input_names=["x"], dynamic_axes={"x": {0: "batch"}}, dynamo=False
    )
    return {"pt2": work / "model.pt2", "data": work / "data.npz", "onnx": work / "digits.onnx"}


def serve(work: str) -> None:
    from server.app import create_server, shutdown
    from server.config import ServerConfig, Tenant
    from server.inference.repository import ModelRepository

    tenants = (
        Tenant(name="jobs", build_tokens=(TOKENS["jobs"],)),
        Tenant(name="victim", inference_tokens=(TOKENS["victim"],)),
        Tenant(name="load", inference_tokens=(TOKENS["load"],)),
        Tenant(name="stall", build_tokens=(TOKENS["stall"],)),
    )
    repository = ModelRepository()
    for tenant in ("victim", "load"):
        repository.register("digits", "1", Path(work) / "digits.onnx", tenant=tenant)
    config = ServerConfig(data_dir=Path(work) / "data", tenants=tenants, max_concurrent_jobs=2, upload_idle_s=120)
    server, port = create_server("127.0.0.1:0", config, repository=repository)
    server.start()
    print(port, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    shutdown(server, 0)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Clients:
    """ModelInfer callers; each thread has its own channel and records (latency, status code name)."""

    def __init__(self, address: str, token: str) -> None:
        import grpc

        from server.gen.inference import grpc_service_pb2 as pb
        from server.gen.inference import grpc_service_pb2_grpc as rpc

        self.grpc, self.address, self.metadata = grpc, address, (("authorization", f"Bearer {token}"),)
        request = pb.ModelInferRequest(model_name="digits")
        request.inputs.add(name="x", datatype="FP32", shape=[1, 1, 8, 8])
        request.raw_input_contents.append(np.zeros((1, 1, 8, 8), np.float32).tobytes())
        self.request, self.rpc = request, rpc

    def run(self, threads: int, seconds: float) -> tuple[list[float], collections.Counter]:
        results: list[list[tuple[float, str]]] = [[] for _ in range(threads)]
        stop = time.perf_counter() + seconds

        def loop(mine: list) -> None:
            with self.grpc.insecure_channel(self.address) as channel:
                stub = self.rpc.GRPCInferenceServiceStub(channel)
                while (start := time.perf_counter()) < stop:
                    try:
                        stub.ModelInfer(self.request, metadata=self.metadata, timeout=30)
                        code = "OK"
                    except self.grpc.RpcError as exc:
                        code = exc.code().name
                    mine.append((time.perf_counter() - start, code))

        workers = [threading.Thread(target=loop, args=(results[i],)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        flat = [r for rs in results for r in rs]
        return [lat for lat, code in flat if code == "OK"], collections.Counter(code for _, code in flat)


def p99_ms(latencies: list[float]) -> float:
    return float(np.percentile(np.array(latencies) * 1e3, 99)) if latencies else float("nan")


def stall(address: str, count: int, release: threading.Event) -> list:
    import grpc

    from compressor.options import CompressOptions
    from sdkgen.spec import SdkSpec
    from server.gen.edgeforge.v1 import compression_pb2 as pb
    from server.gen.edgeforge.v1 import compression_pb2_grpc as rpc
    from server.jobs.spec import to_proto

    spec = to_proto("pixel-8", SdkSpec(name="Digits", package="com.example.digits"), CompressOptions())

    def upload():
        yield pb.SubmitJobRequest(spec=spec)
        yield pb.SubmitJobRequest(
            file=pb.FileHeader(role=pb.FileHeader.MODEL, filename="model.pt2", size=1 << 20, sha256="a" * 64)
        )
        release.wait(600)

    channel = grpc.insecure_channel(address)
    stub = rpc.CompressionServiceStub(channel)
    metadata = (("authorization", f"Bearer {TOKENS['stall']}"),)
    return [stub.SubmitJob.future(upload(), metadata=metadata) for _ in range(count)]


def submit_jobs(address: str, files: dict, count: int) -> list:
    from compressor.options import CompressOptions
    from sdkgen.spec import SdkSpec
    from server.client import CompressionClient
    from server.jobs.spec import to_proto

    client = CompressionClient(address, TOKENS["jobs"])
    spec = to_proto(
        "pixel-8",
        SdkSpec(name="Digits", package="com.example.digits", platforms=("python",)),
        CompressOptions(latency_repeats=5, latency_warmup=1),
    )
    return client, [client.submit(spec, files["pt2"], files["data"]) for _ in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--stalled", type=int, default=16)
    parser.add_argument("--reference-seconds", type=float, default=8.0, help="length of phases 1 and 2")
    parser.add_argument("--memory-bound-mb", type=float, default=150.0)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve) or 0

    work = Path(tempfile.mkdtemp(prefix="edgeforge-load-"))
    files = prepare(work)
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(work)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    address = f"127.0.0.1:{child.stdout.readline().strip()}"
    report: dict = {"clients": args.clients, "seconds": args.seconds, "jobs": args.jobs, "stalled": args.stalled}
    try:
        victim = Clients(address, TOKENS["victim"])
        victim.run(1, 2.0)  # warm up
        unloaded, _ = victim.run(1, args.reference_seconds)
        release = threading.Event()
        futures = stall(address, args.stalled, release)
        time.sleep(1.0)
        stalled, victim_codes = victim.run(1, args.reference_seconds)
        refused = sum(f.done() and f.code().name == "RESOURCE_EXHAUSTED" for f in futures)
        release.set()
        report["victim_p99_ms"] = {"unloaded": p99_ms(unloaded), "with_stalled_streams": p99_ms(stalled)}
        report["stalled_streams_refused"] = refused
        report["victim_errors_while_stalled"] = {k: v for k, v in victim_codes.items() if k != "OK"}

        client, jobs = submit_jobs(address, files, args.jobs)
        samples: list[float] = []
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(1.0):
                samples.append(rss_mb(child.pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        latencies, codes = Clients(address, TOKENS["load"]).run(args.clients, args.seconds)
        sampling.set()
        sampler.join()
        from server.gen.edgeforge.v1 import compression_pb2 as cpb

        states = [
            cpb.JobState.Name(client.stub.GetJob(cpb.GetJobRequest(job_id=j.id), metadata=client.metadata).state)
            for j in jobs
        ]
        client.close()
        settled = samples[10:] or samples
        report["load"] = {
            "requests": sum(codes.values()),
            "ok": codes.get("OK", 0),
            "resource_exhausted": codes.get("RESOURCE_EXHAUSTED", 0),
            "other_errors": {k: v for k, v in codes.items() if k not in ("OK", "RESOURCE_EXHAUSTED")},
            "p50_ms": float(np.percentile(np.array(latencies) * 1e3, 50)) if latencies else None,
            "p99_ms": p99_ms(latencies),
            "server_rss_mb": {
                "first": samples[0] if samples else None,
                "at_10s": settled[0],
                "max": max(samples),
                "last": samples[-1],
            },
            "job_states": states,
        }
    finally:
        child.stdin.close()
        child.wait(60)
    ratio = report["victim_p99_ms"]["with_stalled_streams"] / report["victim_p99_ms"]["unloaded"]
    growth = max(settled) - settled[0]
    report["criteria"] = {
        "no errors but RESOURCE_EXHAUSTED": not report["load"]["other_errors"]
        and not report["victim_errors_while_stalled"],
        f"victim p99 within 2x unloaded (got {ratio:.2f}x)": ratio <= 2.0,
        f"server memory flat within {args.memory_bound_mb:g} MiB after 10 s (grew {growth:.0f} MiB)": growth
        <= args.memory_bound_mb,
    }
    print(json.dumps(report, indent=1))
    return 0 if all(report["criteria"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
