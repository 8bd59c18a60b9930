"""Builds on a real distributed queue (issue 16): Redis, PostgreSQL and two `sdkgen worker` processes on loopback,
six jobs from two tenants through the gRPC service, one worker SIGKILLed mid-job; every job SUCCEEDED with
artifacts byte-identical to a local build (timings aside), nothing lost or duplicated; cancellation reaches a
running job. Nothing is mocked: real Redis and PostgreSQL from Debian, real bubblewrap sandboxes, real SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from services import have_postgres, have_redis, postgres_server, redis_server
from support import require, wait_for

from compressor.options import CompressOptions
from compressor.profiles import Precision
from sdkgen.spec import SdkSpec, read_labels
from server.app import create_server, shutdown
from server.client import CompressionClient
from server.config import ServerConfig, Tenant
from server.gen.edgeforge.v1 import compression_pb2 as pb
from server.jobs.spec import to_proto

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
TENANTS = (
    Tenant(name="alice", build_tokens=("alice-build",), inference_tokens=("alice-infer",)),
    Tenant(name="bob", build_tokens=("bob-build",), inference_tokens=("bob-infer",)),
)
OPTIONS = CompressOptions(precisions=(Precision.INT8_DYNAMIC,), latency_repeats=3, latency_warmup=1)
MEASURED = {"report.json", "report.html", "summary.txt", "converter.log"}  # as in test_server_jobs.py
HEARTBEAT_S = 2


def quick_spec(digits_files):
    sdk = SdkSpec(
        name="Digits",
        package="com.example.digits",
        platforms=("python",),
        labels=read_labels(digits_files / "labels.txt"),
    )
    return to_proto("pixel-8", sdk, OPTIONS)


@pytest.fixture(scope="module")
def services():
    require(have_redis(), "redis-server (Debian: apt-get install redis-server)")
    require(have_postgres(), "PostgreSQL's initdb/pg_ctl (Debian: apt-get install postgresql)")
    require(shutil.which("bwrap") is not None, "bubblewrap for the job sandbox")
    with redis_server() as queue, postgres_server() as store:
        yield queue, store


class Workers:
    """``sdkgen worker`` processes on this machine, each with its own work folder, sharing the three URLs."""

    def __init__(self, queue: str, store: str, artifacts: str, root: Path) -> None:
        self.args, self.root, self.processes = (queue, store, artifacts), root, {}

    def start(self, name: str) -> subprocess.Popen:
        queue, store, artifacts = self.args
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the worker's output, kept for failures
        process = subprocess.Popen(
            [sys.executable, "-m", "sdkgen.cli", "worker", "--queue", queue, "--store", store, "--artifacts",
             artifacts, "--work-dir", str(self.root / name), "--name", name, "--heartbeat", str(HEARTBEAT_S)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=log,
        )  # fmt: skip
        self.processes[name] = process
        return process

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def cluster(services, tmp_path_factory):
    """The gRPC server (``--executor rq``) and two workers, w1 and w2."""
    queue, store = services
    root = tmp_path_factory.mktemp("scaleout")
    artifacts = f"file://{root / 'artifacts'}"
    config = ServerConfig(
        data_dir=root / "server",
        tenants=TENANTS,
        executor="rq",
        queue_url=queue,
        store_url=store,
        artifacts_url=artifacts,
        job_retries=2,
    )
    server, port = create_server("127.0.0.1:0", config)
    server.start()
    workers = Workers(queue, store, artifacts, root)
    for name in ("w1", "w2"):
        workers.start(name)
    yield {"server": server, "address": f"127.0.0.1:{port}", "workers": workers, "root": root, "queue": queue}
    workers.stop()
    shutdown(server, 0)


@pytest.fixture(scope="module")
def local_build(digits_files, tmp_path_factory):
    from sdkgen.build import build
    from server.jobs.spec import from_proto

    request = from_proto(quick_spec(digits_files))
    out = tmp_path_factory.mktemp("local") / "out"
    build(digits_files / "model.pt2", "pixel-8", out, request.sdk, data=digits_files / "data.npz", options=OPTIONS)
    return out


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _worker_of(server, job_id: str) -> tuple[str, int, bool]:
    job = server.jobs.store.get(job_id)
    return job.worker, job.attempt, job.state == "RUNNING" and job.last_event is not None


def test_cancel_reaches_a_running_job(cluster, digits_files):
    client = CompressionClient(cluster["address"], "alice-build")
    job = client.submit(quick_spec(digits_files), digits_files / "model.pt2", digits_files / "data.npz")
    server = cluster["server"]
    worker, _, _ = wait_for(lambda: (w := _worker_of(server, job.id))[2] and w, what="the job running with progress")
    cancelled = client.stub.CancelJob(pb.CancelJobRequest(job_id=job.id), metadata=client.metadata)
    assert cancelled.state == pb.CANCELLED and "cancelled while running" in cancelled.error
    folder = cluster["root"] / worker / "builds" / job.id
    wait_for(lambda: not folder.exists(), 60, "the worker to stop the build and remove its folder")
    final = client.watch(job.id, lambda event: None)
    assert final.state == pb.CANCELLED and not final.artifacts
    assert not (cluster["root"] / "artifacts" / job.id).exists()
    client.close()


def test_six_jobs_two_tenants_one_worker_killed(cluster, digits_files, local_build, tmp_path):
    server, workers = cluster["server"], cluster["workers"]
    clients = {t: CompressionClient(cluster["address"], f"{t}-build") for t in ("alice", "bob")}
    submitted = []
    for i in range(6):
        client = clients["alice" if i % 2 == 0 else "bob"]
        job = client.submit(quick_spec(digits_files), digits_files / "model.pt2", digits_files / "data.npz")
        submitted.append((client, job.id))

    def running_on_w1():
        for _, job_id in submitted:
            worker, _attempt, progressing = _worker_of(server, job_id)
            if worker == "w1" and progressing:
                return job_id
        return None

    killed_job = wait_for(running_on_w1, 300, "a job building on w1")
    workers.processes["w1"].send_signal(signal.SIGKILL)
    workers.processes["w1"].wait(30)

    finals = [client.watch(job_id, lambda event: None) for client, job_id in submitted]
    assert [f.state for f in finals] == [pb.SUCCEEDED] * 6, [(f.id, f.error) for f in finals]
    record = server.jobs.store.get(killed_job)
    assert record.attempt >= 2 and record.worker == "w2", record
    assert any(e.stage == "retry" for _, e in server.jobs.store.events(killed_job, 0))
    for (client, job_id), final in zip(submitted, finals):
        out = client.download(final, tmp_path / job_id)
        assert _tree(out) == _tree(local_build)
        differ = [
            p for p in _tree(out) if p not in MEASURED and (out / p).read_bytes() != (local_build / p).read_bytes()
        ]
        assert differ == [], job_id
    # nothing duplicated: one committed attempt per job, no uploads left behind
    artifacts = cluster["root"] / "artifacts"
    for _, job_id in submitted:
        assert [p.name for p in (artifacts / job_id).iterdir()] == [f"a{server.jobs.store.get(job_id).attempt}"]
    assert not list((artifacts / ".uploads").glob("*"))
    for client in clients.values():
        client.close()


def test_queue_holds_json_only_and_models_are_served(cluster):
    from redis import Redis

    from server.gen.inference import grpc_service_pb2 as ipb
    from server.gen.inference import grpc_service_pb2_grpc as irpc

    redis = Redis.from_url(cluster["queue"])
    keys = [k for k in redis.scan_iter("rq:job:*") if redis.type(k) == b"hash"]
    assert keys
    for key in keys:
        data = redis.hget(key, "data")
        if data is not None:  # zlib-compressed JSON, never a pickle: [function, instance, args, kwargs]
            function, _, args, _ = json.loads(zlib.decompress(data))
            assert function == "server.jobs.rq_task.run_job" and isinstance(args[0], str)
    job = next(j for j in cluster["server"].jobs.store.list("bob") if j.state == "SUCCEEDED")
    import grpc

    x = np.zeros((1, 1, 8, 8), np.float32)
    tensor = ipb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=x.shape)
    request = ipb.ModelInferRequest(model_name=job.model_name, inputs=[tensor], raw_input_contents=[x.tobytes()])
    with grpc.insecure_channel(cluster["address"]) as channel:
        reply = irpc.GRPCInferenceServiceStub(channel).ModelInfer(
            request, metadata=(("authorization", "Bearer bob-infer"),)
        )
    assert np.frombuffer(reply.raw_output_contents[0], np.float32).shape == (10,)


def test_a_worker_runs_only_edgeforge_jobs(cluster, tmp_path):
    """RQ would import and call any function a job in Redis names: an EdgeForge worker refuses all but its task."""
    from redis import Redis
    from rq import Queue

    from server.jobs import rq_queues

    canary = tmp_path / "canary"
    queue = Queue(
        rq_queues.lane("mallory"), connection=Redis.from_url(cluster["queue"]), serializer=rq_queues.SERIALIZER
    )
    job = queue.enqueue("os.system", f"touch {canary}")
    wait_for(lambda: job.get_status(refresh=True) == "failed", 120, "the worker to refuse the job")
    assert not canary.exists()
    with pytest.raises(rq_queues.NotOurJobError, match="refusing to run 'os.system' from the queue"):
        _ = rq_queues.EdgeForgeJob.fetch(job.id, connection=queue.connection, serializer=rq_queues.SERIALIZER).func
