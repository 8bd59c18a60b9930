"""Throughput of N concurrent builds on the distributed queue (``--executor rq``) with 1 and with 2 workers,
side by side: a real Redis and PostgreSQL (throwaway, loopback), the gRPC server and ``sdkgen worker``
processes on this machine, each job a quick digits build (int8-dynamic only) in the bubblewrap sandbox.

    .venv/bin/python bench/scaleout.py [--jobs 4] [--workers 1,2]

On a 2-core machine the ratio stays near 1: one build already keeps both cores busy (PyTorch, TensorFlow and
onnxruntime use every core), so a second worker mostly shares them. On a machine with more cores, or with the
workers on separate machines, the second worker adds nearly its own throughput. The point here is that the
path works end to end and what each worker count costs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "examples" / "digits")]


def digits_files(folder: Path) -> Path:
    """model.pt2, data.npz and labels.txt of the example CNN, trained briefly (as tests/conftest.py does)."""
    import numpy as np
    import torch
    from model import CLASSES, DigitsCNN, load_digits_split, train

    x_train, y_train, x_test, y_test = load_digits_split()
    torch.manual_seed(0)
    module = train(DigitsCNN(width=8), x_train, y_train, epochs=8)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(module, (torch.from_numpy(x_test[:2]),), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, folder / "model.pt2")
    np.savez(folder / "data.npz", x=x_test[:120], labels=y_test[:120])
    (folder / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    return folder


def spec(files: Path):
    from compressor.options import CompressOptions
    from compressor.profiles import Precision
    from sdkgen.spec import SdkSpec, read_labels
    from server.jobs.spec import to_proto

    options = CompressOptions(precisions=(Precision.INT8_DYNAMIC,), latency_repeats=3, latency_warmup=1)
    sdk = SdkSpec(name="Digits", package="com.example.digits", platforms=("python",),
                  labels=read_labels(files / "labels.txt"))  # fmt: skip
    return to_proto("pixel-8", sdk, options)


def run(files: Path, jobs: int, workers: int, root: Path) -> tuple[float, list[str]]:
    """Seconds from the first submission to the last job's end, and the final states."""
    from services import postgres_server, redis_server

    from server.app import create_server, shutdown
    from server.client import CompressionClient
    from server.config import ServerConfig

    with redis_server() as queue, postgres_server() as store:
        artifacts = str(root / "artifacts")
        config = ServerConfig(data_dir=root / "server", executor="rq", queue_url=queue, store_url=store,
                              artifacts_url=artifacts, max_queued_jobs=jobs)  # fmt: skip
        server, port = create_server("127.0.0.1:0", config)
        server.start()
        processes = []
        for i in range(workers):
            log = open(root / f"w{i}.log", "ab")  # noqa: SIM115 - the worker's output
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "sdkgen.cli", "worker", "--queue", queue, "--store", store, "--artifacts",
                 artifacts, "--work-dir", str(root / f"w{i}"), "--name", f"w{i}", "--heartbeat", "2"],
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=log,
            ))  # fmt: skip
        client = CompressionClient(f"127.0.0.1:{port}")
        try:
            time.sleep(5)  # let the workers import and register before the clock starts
            start = time.monotonic()
            ids = [client.submit(spec(files), files / "model.pt2", files / "data.npz").id for _ in range(jobs)]
            states = [client.watch(job_id, lambda event: None).state for job_id in ids]
            elapsed = time.monotonic() - start
        finally:
            client.close()
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(60)
            shutdown(server, 0)
    from server.gen.edgeforge.v1 import compression_pb2 as pb

    return elapsed, [pb.JobState.Name(s) for s in states]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4, help="concurrent jobs per run (default 4)")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="edgeforge-scaleout-"))
    try:
        files = digits_files(Path(tempfile.mkdtemp(dir=scratch)))
        results = {}
        for count in counts:
            elapsed, states = run(files, args.jobs, count, Path(tempfile.mkdtemp(dir=scratch)))
            results[count] = (elapsed, states)
            print(f"{count} worker(s): {args.jobs} jobs in {elapsed:.1f} s, states {sorted(set(states))}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    base = results[counts[0]][0]
    print(
        f"\n{'workers':>8} {'jobs':>5} {'seconds':>8} {'jobs/min':>9} {'speed-up':>9}   (host: {os.cpu_count()} cores)"
    )
    for count, (elapsed, _) in results.items():
        print(f"{count:>8} {args.jobs:>5} {elapsed:8.1f} {60 * args.jobs / elapsed:9.2f} {base / elapsed:9.2f}")
    return 0 if all(s == ["SUCCEEDED"] * args.jobs for _, s in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
