"""`sdkgen serve` as a real process: SIGTERM shuts it down gracefully; SIGKILL mid-job, then a restart, leaves
consistent states and nothing partial to download."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from support import wait_for

from server.app import create_server, shutdown
from server.client import CompressionClient
from server.config import ServerConfig
from server.gen.edgeforge.v1 import compression_pb2 as pb

pytestmark = pytest.mark.slow  # builds or serves real models: not part of make test-fast

ROOT = Path(__file__).resolve().parents[1]
SYS_TGKILL = 234  # x86-64: signal one thread of a process


def _serve(data_dir: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sdkgen.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    assert "listening on port" in line, line
    return process, f"127.0.0.1:{line.split()[-1]}"


def test_sigterm_stops_the_server_gracefully(tmp_path):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    process, address = _serve(tmp_path)
    with grpc.insecure_channel(address) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_sigterm_received_by_a_grpc_thread_still_stops_the_server(tmp_path):
    """The kernel may hand a process-directed signal to any thread; one taken by a gRPC thread must stop it too."""
    process, _ = _serve(tmp_path)
    threads = [int(tid) for tid in os.listdir(f"/proc/{process.pid}/task") if int(tid) != process.pid]
    assert threads, "the server runs no thread besides its main one"
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(SYS_TGKILL, process.pid, max(threads), signal.SIGTERM) == 0, os.strerror(ctypes.get_errno())
    assert process.wait(timeout=30) == 0


def test_kill_mid_job_then_restart(tmp_path, digits_files):
    from test_server_jobs import digits_spec

    process, address = _serve(tmp_path)
    client = CompressionClient(address)
    try:
        running = client.submit(digits_spec(digits_files), digits_files / "model.pt2", digits_files / "data.npz")
        queued = client.submit(digits_spec(digits_files), digits_files / "model.pt2")
        wait_for(lambda: client.stub.GetJob(pb.GetJobRequest(job_id=running.id)).stage, what="the first progress event")
    finally:
        client.close()
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    server, port = create_server("127.0.0.1:0", ServerConfig(data_dir=tmp_path))
    server.start()
    client = CompressionClient(f"127.0.0.1:{port}")
    try:
        interrupted = client.stub.GetJob(pb.GetJobRequest(job_id=running.id))
        assert interrupted.state == pb.FAILED and "interrupted" in interrupted.error and not interrupted.artifacts
        with pytest.raises(grpc.RpcError) as caught:
            list(client.stub.DownloadArtifact(pb.DownloadArtifactRequest(job_id=running.id, name="report.json")))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert not list((tmp_path / "artifacts").glob(".staging-*"))
        wait_for(
            lambda: client.stub.GetJob(pb.GetJobRequest(job_id=queued.id)).state == pb.RUNNING, what="queued job to run"
        )
        client.stub.CancelJob(pb.CancelJobRequest(job_id=queued.id))
        assert client.watch(queued.id).state == pb.CANCELLED
    finally:
        client.close()
        shutdown(server, 0)
