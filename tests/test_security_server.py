"""Attacks on ``sdkgen serve`` over real gRPC on loopback, each as a hostile tenant would try it.

Models that run code (TorchScript ``torch.from_file``) and archives that carry pickles are submitted as jobs;
streams are stalled; requests are oversized; the job store fails under a running job.  Each test checks that
nothing outside the job was written, that no secret reached anything the attacker can read, and that other
tenants are still served.  Needs bubblewrap (the job sandbox).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import threading
import time
from pathlib import Path
from typing import List  # noqa: UP035 - TorchScript reads typing.List

import grpc
import numpy as np
import pytest
import torch
from support import require, wait_for

from server.app import create_server, shutdown
from server.client import CompressionClient
from server.config import ServerConfig, Tenant
from server.gen.edgeforge.v1 import compression_pb2 as pb
from server.gen.edgeforge.v1 import compression_pb2_grpc as rpc
from server.gen.inference import grpc_service_pb2 as ipb
from server.gen.inference import grpc_service_pb2_grpc as irpc
from server.inference.repository import ModelRepository
from server.jobs.spec import to_proto

pytestmark = pytest.mark.slow  # builds or serves real models: not part of make test-fast

SECRET = "hunter2-alice-build"
TENANTS = (
    Tenant(name="alice", build_tokens=(SECRET,), inference_tokens=("alice-infer",), max_queued_jobs=3),
    Tenant(name="bob", build_tokens=("bob-build",), inference_tokens=("bob-infer",)),
)
STREAMS_PER_TENANT = 4


def auth(token):
    return (("authorization", f"Bearer {token}"),)


def _code(call, *args, **kwargs):
    try:
        result = call(*args, **kwargs)
        if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
            list(result)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        return exc.code(), exc.details()


def tiny_onnx(path: Path) -> Path:
    """y = x + 1 over x: float32 [batch, 4]."""
    import onnx
    from onnx import TensorProto, helper

    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A server with the sandbox on, two tenants, an auth file it must keep secret, and a served model."""
    require(shutil.which("bwrap") is not None, "bubblewrap (bwrap) is needed for the job sandbox")
    root = tmp_path_factory.mktemp("hostile")
    auth_file = root / "tenants.toml"
    auth_file.write_text(f'[[tenants]]\nname = "alice"\nbuild_tokens = ["{SECRET}"]\n')
    data_dir = root / "data"
    stale = data_dir / "work" / "uploads" / ".incoming-crashed"
    stale.mkdir(parents=True)
    (stale / "model-model.pt2").write_bytes(b"half an upload")
    repository = ModelRepository()
    onnx_path = tiny_onnx(root / "tiny.onnx")
    for who in ("alice", "bob"):
        repository.register("tiny", "1", onnx_path, tenant=who)
    config = ServerConfig(
        data_dir=data_dir,
        tenants=TENANTS,
        max_concurrent_jobs=1,
        max_upload_bytes=8 << 20,
        upload_idle_s=3.0,
        max_streams_per_tenant=STREAMS_PER_TENANT,
        rpc_threads=16,
        max_request_rows=64,
        max_request_elements=128,
        inference_memory_mb=1,
        min_free_disk_mb=1,
        secret_paths=(auth_file,),
    )
    server, port = create_server("127.0.0.1:0", config, repository=repository)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield {
        "server": server,
        "address": f"127.0.0.1:{port}",
        "root": root,
        "stale": stale,
        "jobs": rpc.CompressionServiceStub(channel),
        "infer": irpc.GRPCInferenceServiceStub(channel),
    }
    channel.close()
    shutdown(server, 0)


def spec():
    from sdkgen.spec import SdkSpec

    return to_proto("pixel-8", SdkSpec(name="Digits", package="com.example.digits", platforms=("python",)), _fast())


def _fast():
    from compressor.options import CompressOptions

    return CompressOptions(latency_repeats=3, latency_warmup=1)


def infer_request(rows: int, cols: int = 4, model: str = "tiny") -> ipb.ModelInferRequest:
    x = np.ones((rows, cols), np.float32)
    request = ipb.ModelInferRequest(model_name=model)
    request.inputs.add(name="x", datatype="FP32", shape=[rows, cols])
    request.raw_input_contents.append(x.tobytes())
    return request


def bob_is_served(world) -> None:
    """Another tenant's unary calls still answer (a generous deadline: functional, not a latency figure)."""
    response = world["infer"].ModelInfer(infer_request(2), metadata=auth("bob-infer"), timeout=60)
    assert np.frombuffer(response.raw_output_contents[0], np.float32).tolist() == [2.0] * 8
    assert world["jobs"].ListJobs(pb.ListJobsRequest(), metadata=auth("bob-build"), timeout=60) is not None


# ---- models that run code -------------------------------------------------------------------------------------


class FileProbe(torch.nn.Module):
    """A TorchScript model that writes (``shared=True``) or reads and leaks (``shared=False``) a host file."""

    def __init__(self, path: str, write: bool) -> None:
        super().__init__()
        self.path = path
        self.write = write
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x):
        if self.write:
            t = torch.from_file(self.path, shared=True, size=16, dtype=torch.uint8)
            t.fill_(65)
            return self.fc(x.flatten(1)) + t.sum().float() * 0
        s = torch.from_file(self.path, shared=False, size=19, dtype=torch.uint8)
        leaked: List[int] = s.to(torch.int64).tolist()  # noqa: UP006 - TorchScript reads typing.List
        raise RuntimeError("leaked: " + str(leaked))


def _torchscript(tmp: Path, path: Path, write: bool) -> Path:
    out = tmp / ("writer.pt" if write else "reader.pt")
    torch.jit.save(torch.jit.script(FileProbe(str(path), write)), str(out))
    return out


def _data(tmp: Path) -> Path:
    path = tmp / "data.npz"
    np.savez(path, x=np.zeros((8, 1, 8, 8), np.float32), labels=np.arange(8) % 10)
    return path


@pytest.mark.parametrize("write", [True, False], ids=["from_file shared=True writes", "from_file reads a secret"])
def test_torchscript_from_file_reaches_nothing_outside_its_job(world, tmp_path, write):
    target = tmp_path / "canary" if write else world["root"] / "tenants.toml"
    model = _torchscript(tmp_path, target, write)
    if write:  # the control: run directly, as `sdkgen compress` on a laptop does, the model does write
        torch.jit.load(str(model))(torch.zeros(1, 1, 8, 8))
        assert target.exists()
        target.unlink()
    client = CompressionClient(world["address"], SECRET)
    job = client.submit(spec(), model, _data(tmp_path))
    final = client.watch(job.id)
    client.close()
    assert final.state == pb.FAILED and final.artifacts == []
    assert not (tmp_path / "canary").exists()
    leaked = str(list(SECRET.encode()[:19]))[1:-1]
    for text in (final.error, final.summary):
        assert SECRET not in text and leaked not in text and "Traceback" not in text
        assert str(world["root"] / "data") not in text  # no server paths either
    bob_is_served(world)


def test_hostile_pt2_job_fails_with_the_refusal_and_runs_nothing(world, tmp_path):
    from test_security_pt2 import TinyNet, canary_code, pickled_weight, rewrite

    genuine = tmp_path / "genuine.pt2"
    torch.export.save(torch.export.export(TinyNet().eval(), (torch.randn(2, 4),)), genuine)
    hostile = rewrite(genuine, tmp_path / "model.pt2", pickled_weight(canary_code(tmp_path / "canary")))
    client = CompressionClient(world["address"], SECRET)
    final = client.watch(client.submit(spec(), hostile).id)
    client.close()
    assert final.state == pb.FAILED and final.failure == pb.INVALID_INPUT
    assert "stored as a pickle" in final.error and "never runs code" in final.error
    assert not (tmp_path / "canary").exists()


# ---- one client cannot starve the others ------------------------------------------------------------------------


def _stalled_upload(release: threading.Event):
    yield pb.SubmitJobRequest(spec=spec())
    yield pb.SubmitJobRequest(
        file=pb.FileHeader(role=pb.FileHeader.MODEL, filename="model.pt2", size=1 << 20, sha256="a" * 64)
    )
    yield pb.SubmitJobRequest(chunk=b"x" * 1000)
    release.wait(120)


def test_stalled_uploads_are_capped_per_tenant_then_cancelled_when_idle(world):
    release = threading.Event()
    futures = [world["jobs"].SubmitJob.future(_stalled_upload(release), metadata=auth(SECRET)) for _ in range(16)]
    try:
        refused = wait_for(
            lambda: [f for f in futures if f.done()] if sum(f.done() for f in futures) >= 12 else None,
            timeout=60,
            what="streams beyond the per-tenant cap to be refused",
        )
        assert all(f.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for f in refused)
        assert f"the limit is {STREAMS_PER_TENANT} per tenant" in refused[0].details()
        bob_is_served(world)  # while alice holds her streams
        # the idle watchdog frees the stalled four
        wait_for(lambda: all(f.done() for f in futures), timeout=60, what="idle uploads to be cancelled")
        assert world["server"].slots.open("alice") == 0
    finally:
        release.set()
    assert world["jobs"].ListJobs(pb.ListJobsRequest(), metadata=auth(SECRET)).jobs is not None
    assert not list((world["server"].jobs.runner.uploads_root).glob(".incoming-*"))


@contextlib.contextmanager
def held_runner(runner, where: str = "_one"):
    """Hold every runner thread at ``where`` (``_one``: before a job starts; ``_run``: once it is RUNNING)."""
    hold = threading.Event()
    original = getattr(runner, where)

    def held(*args):
        hold.wait(120)
        return original(*args)

    setattr(runner, where, held)
    try:
        yield hold
    finally:
        setattr(runner, where, original)
        hold.set()


def test_watch_streams_are_capped_too(world, tmp_path):
    client = CompressionClient(world["address"], SECRET)
    with held_runner(world["server"].jobs.runner):
        job = client.submit(spec(), _write(tmp_path / "model.pt2", b"not a model" * 10))
        calls = [
            world["jobs"].WatchJob(pb.WatchJobRequest(job_id=job.id), metadata=auth(SECRET))
            for _ in range(STREAMS_PER_TENANT + 4)
        ]
        refused = wait_for(
            lambda: [c for c in calls if c.done()] if sum(c.done() for c in calls) >= 4 else None,
            timeout=60,
            what="watches beyond the cap to be refused",
        )
        assert {c.code() for c in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        bob_is_served(world)
        for call in calls:
            call.cancel()
    slots = world["server"].slots
    wait_for(lambda: slots.open("alice") == 0, timeout=60, what="cancelled watches to give their slots back")
    assert client.watch(job.id).state == pb.FAILED
    client.close()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---- ModelInfer admission --------------------------------------------------------------------------------------


def _wrapping_dims():
    """Dimensions whose product wraps int64 (2**62 + 1 rows of 4): refused by size, never an INTERNAL error."""
    request = ipb.ModelInferRequest(model_name="tiny")
    request.inputs.add(name="x", datatype="FP32", shape=[(1 << 62) + 1, 4])
    request.raw_input_contents.append(b"\0" * 16)
    return request


@pytest.mark.parametrize(
    "request_, pattern",
    [
        (lambda: infer_request(65), r"has 65 rows; this server accepts at most 64 per request"),
        (lambda: infer_request(40), r"holds 160 elements; this server accepts at most 128"),
        (lambda: infer_request(30), None),  # within both limits
        (_wrapping_dims, r"rows; this server accepts at most 64 per request"),
    ],
    ids=["too many rows", "too many elements", "within limits", "int64-wrapping dims"],
)
def test_modelinfer_row_and_element_limits(world, request_, pattern):
    code, details = _code(world["infer"].ModelInfer, request_(), metadata=auth("bob-infer"))
    if pattern is None:
        assert code == grpc.StatusCode.OK, details
    else:
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and __import__("re").search(pattern, details), details


def test_modelinfer_bytes_in_flight_are_budgeted(world):
    big = ipb.ModelInferRequest(model_name="tiny")
    big.inputs.add(name="x", datatype="FP32", shape=[1, 4])
    big.raw_input_contents.append(b"\0" * (2 << 20))  # 2 MiB against a 1 MiB budget
    code, details = _code(world["infer"].ModelInfer, big, metadata=auth("bob-infer"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "its limit is 1048576" in details
    bob_is_served(world)


# ---- queue quota and fairness ----------------------------------------------------------------------------------


def test_fair_queue_serves_a_small_tenant_between_a_big_ones_jobs():
    from server.jobs.scheduler import FairQueue

    queue = FairQueue()
    for i in range(300):
        queue.put("alice", f"a{i}")
    queue.put("bob", "b0")
    order = [queue.get(timeout=1) for _ in range(4)]
    assert order == ["a0", "b0", "a1", "a2"]


def test_per_tenant_queue_quota(world, tmp_path):
    client = CompressionClient(world["address"], SECRET)
    bob = CompressionClient(world["address"], "bob-build")
    model = _write(tmp_path / "model.pt2", b"not a model" * 10)
    with held_runner(world["server"].jobs.runner):
        jobs = [client.submit(spec(), model) for _ in range(3)]
        with pytest.raises(grpc.RpcError) as refused:
            client.submit(spec(), model)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "has 3 jobs queued or running, its quota is 3" in refused.value.details()
        bob_job = bob.submit(spec(), model)  # another tenant is not held to alice's quota
    assert [client.watch(j.id).state for j in jobs] == [pb.FAILED] * 3
    assert bob.watch(bob_job.id).state == pb.FAILED
    client.close()
    bob.close()


# ---- the runner survives its store -----------------------------------------------------------------------------


def test_runner_survives_a_failing_store_and_loses_nothing(world, tmp_path):
    """SQLite refuses every write while a job runs (its progress, its outcome): the runner keeps going, records
    the job once the store recovers, and the next job runs as usual."""
    server = world["server"]
    store, runner = server.jobs.store, server.jobs.runner
    model = _write(tmp_path / "model.pt2", b"not a model" * 10)
    client = CompressionClient(world["address"], "bob-build")
    with held_runner(runner, "_run") as hold:  # the job is RUNNING, its worker not yet started
        running = client.submit(spec(), model)
        wait_for(lambda: store.get(running.id).state == "RUNNING", timeout=60, what="the job to start")
        store.connection.execute("PRAGMA query_only = ON")  # every write now fails inside SQLite
        hold.set()
    try:
        wait_for(lambda: runner.worker_pid(running.id), timeout=120, what="the worker to start")
        wait_for(lambda: runner.worker_pid(running.id) is None, timeout=180, what="the worker to end")
        with pytest.raises(grpc.RpcError) as refused:
            client.submit(spec(), model)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "job store cannot record this right now" in refused.value.details()
        assert all(t.is_alive() for t in runner._threads)
        assert client.stub.GetJob(pb.GetJobRequest(job_id=running.id), metadata=client.metadata).state == pb.RUNNING
    finally:
        store.connection.execute("PRAGMA query_only = OFF")
    final = client.watch(running.id)  # recorded once the store takes writes again
    assert final.state == pb.FAILED and "submit the job again" in final.error
    after = client.watch(client.submit(spec(), model).id)
    assert after.state == pb.FAILED and "is not a readable ExportedProgram" in after.error
    client.close()


def test_low_disk_space_refuses_new_jobs_with_a_clear_message(world, tmp_path):
    runner = world["server"].jobs.runner
    saved, runner.min_free_bytes = runner.min_free_bytes, 1 << 62
    try:
        client = CompressionClient(world["address"], "bob-build")
        with pytest.raises(grpc.RpcError) as refused:
            client.submit(spec(), _write(tmp_path / "model.pt2", b"x" * 100))
        client.close()
    finally:
        runner.min_free_bytes = saved
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "short of disk space" in refused.value.details()


def test_stale_incoming_uploads_are_removed_at_start(world):
    assert not world["stale"].exists()


def test_negative_list_limit_is_not_everything(tmp_path):
    from server.jobs.store import JobStore

    store = JobStore(tmp_path / "jobs.sqlite")
    for _ in range(105):
        store.create("t", {})
    assert len(store.list("t", limit=-1)) == 100
    assert len(store.list("t", limit=3)) == 3
    store.close()


# ---- safe defaults ---------------------------------------------------------------------------------------------


def test_serve_refuses_to_listen_beyond_loopback_without_auth(tmp_path):
    import argparse

    from compressor.errors import InvalidInputError
    from sdkgen import cmd_serve

    parser = argparse.ArgumentParser()
    cmd_serve.add_arguments(parser)
    base = ["--data-dir", str(tmp_path)]
    assert parser.parse_args(base).host == "127.0.0.1"
    with pytest.raises(InvalidInputError, match=r"refusing to listen on 0\.0\.0\.0 without --auth"):
        cmd_serve.config_from(parser.parse_args([*base, "--host", "0.0.0.0"]))
    assert cmd_serve.config_from(parser.parse_args([*base, "--host", "0.0.0.0", "--insecure"]))
    assert cmd_serve.config_from(parser.parse_args([*base, "--host", "[::1]"]))
    auth_file = tmp_path / "t.toml"
    auth_file.write_text('[[tenants]]\nname = "a"\nbuild_tokens = ["s3cret"]\n')
    config = cmd_serve.config_from(parser.parse_args([*base, "--host", "0.0.0.0", "--auth", str(auth_file)]))
    assert "s3cret" not in repr(config) and config.tenants[0].build_token_sha256 == (
        hashlib.sha256(b"s3cret").hexdigest(),
    )
    assert auth_file.resolve() in config.secret_paths
    settings = tmp_path / "server.toml"
    settings.write_text("[sandbox]\naddress_space_mb = 4096\n")
    config = cmd_serve.config_from(parser.parse_args([*base, "--config", str(settings)]))
    assert config.sandbox.address_space_mb == 4096 and config.sandbox.enabled


def test_hashed_tokens_authenticate(world):
    digest_only = Tenant(name="carol", build_token_sha256=(hashlib.sha256(b"carol-token").hexdigest(),))
    from server.auth import AuthInterceptor

    interceptor = AuthInterceptor((digest_only, *TENANTS))
    assert interceptor.lookup("carol-token") == ("carol", "build")
    assert interceptor.lookup(SECRET) == ("alice", "build")
    assert interceptor.lookup("carol-token ") is None


def test_client_refuses_artifact_names_leaving_its_folder(tmp_path):
    """A hostile server names an artifact '../escape': nothing is written outside --out."""
    from concurrent import futures

    data = b"evil"

    class Hostile(rpc.CompressionServiceServicer):
        def DownloadArtifact(self, request, context):  # noqa: N802 - the proto names it
            yield pb.ArtifactChunk(name=request.name, size=len(data), data=data)

    server = __import__("grpc").server(futures.ThreadPoolExecutor(2))
    rpc.add_CompressionServiceServicer_to_server(Hostile(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        client = CompressionClient(f"127.0.0.1:{port}")
        sha = hashlib.sha256(data).hexdigest()
        for name in ("../escape.txt", "/tmp/escape.txt", "a/../../escape.txt", "..", "sub\\..\\escape"):
            job = pb.Job(id="j", state=pb.SUCCEEDED, artifacts=[pb.Artifact(name=name, size=4, sha256=sha)])
            with pytest.raises(Exception, match="not a plain relative path|outside"):
                client.download(job, tmp_path / "out")
        client.close()
    finally:
        server.stop(0)
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/escape.txt").exists()
    assert not (tmp_path / "out").exists()


def test_retries_back_off_with_jitter():
    from server.client import backoff

    waits = [backoff(3) for _ in range(200)]
    assert all(0 <= w <= 1.6 for w in waits) and len(set(waits)) > 150
    assert max(backoff(50) for _ in range(50)) <= 5.0
    time.sleep(0)


def test_store_full_surfaces_as_unavailable_not_a_crash(tmp_path):
    """SQLite's own 'database or disk is full' (the store's file may not grow) is a StoreUnavailableError."""
    from server.errors import StoreUnavailableError
    from server.jobs.store import JobStore

    store = JobStore(tmp_path / "jobs.sqlite")
    pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
    store.connection.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreUnavailableError, match=r"database or disk is full.*nothing was changed, try again later"):
        for _ in range(10_000):
            store.create("t", {"padding": "x" * 4000})
    store.close()


def test_bad_model_version_is_refused_before_the_upload(world):
    bad = spec()
    bad.model_version = "../../v1"
    code, details = _code(world["jobs"].SubmitJob, iter([pb.SubmitJobRequest(spec=bad)]), metadata=auth("bob-build"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "model_version '../../v1' is not allowed" in details


def test_worker_output_with_a_symlink_is_refused(tmp_path):
    """A sandboxed build could link its output to the auth file; the server, reading the output, must not follow."""
    from server.errors import WorkerProtocolError
    from server.jobs.artifacts import check_tree

    (tmp_path / "out" / "python").mkdir(parents=True)
    (tmp_path / "out" / "report.json").write_text("{}")
    check_tree(tmp_path / "out")
    (tmp_path / "out" / "python" / "tokens.txt").symlink_to("/etc/passwd")
    with pytest.raises(WorkerProtocolError, match=r"python/tokens\.txt, which is not a plain file or folder"):
        check_tree(tmp_path / "out")


def test_worker_messages_are_bounded(tmp_path):
    import os as _os

    from server.errors import WorkerProtocolError
    from server.jobs import messages

    read, write = _os.pipe()
    reader = messages.LineReader(read)
    # a daemon, and the read end closed whatever happens: a writer blocked on a full pipe must not hang the session
    writer = threading.Thread(
        target=lambda: (_os.write(write, b"x" * (messages.MAX_LINE + 10)), _os.close(write)), daemon=True
    )
    writer.start()
    try:
        with pytest.raises(WorkerProtocolError, match="longer than"):
            for _ in range(1000):
                reader.poll(0.1)
    finally:
        _os.close(read)
    writer.join(10)
    with pytest.raises(WorkerProtocolError, match="outside its folder"):
        messages.parse(b'["done", {"cloud_file": "../../../etc/passwd"}]')
