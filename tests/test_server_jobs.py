"""CompressionService over loopback: a real job end to end, auth and tenants, and every bad upload."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest
from support import wait_for

from compressor.options import CompressOptions
from sdkgen.spec import SdkSpec, read_labels
from server.app import create_server, shutdown
from server.client import CompressionClient
from server.config import ServerConfig, Tenant
from server.gen.edgeforge.v1 import compression_pb2 as pb
from server.gen.edgeforge.v1 import compression_pb2_grpc as rpc
from server.gen.inference import grpc_service_pb2 as ipb
from server.gen.inference import grpc_service_pb2_grpc as irpc
from server.jobs.spec import to_proto

pytestmark = pytest.mark.slow  # builds or serves real models: not part of make test-fast

TENANTS = (
    Tenant(name="alice", build_tokens=("alice-build",), inference_tokens=("alice-infer",)),
    Tenant(name="bob", build_tokens=("bob-build",), inference_tokens=("bob-infer",)),
)
MAX_UPLOAD = 4 << 20
# select="size": the remote and the local build must pick the same candidate to be byte-identical; "balanced"
# ranks by host timings, which two runs on a loaded machine may order differently.
OPTIONS = CompressOptions(latency_repeats=5, latency_warmup=1, select="size")


def auth(token):
    return (("authorization", f"Bearer {token}"),)


def digits_spec(digits_files, **overrides):
    sdk = SdkSpec(
        name="Digits",
        package="com.example.digits",
        platforms=("python",),
        labels=read_labels(digits_files / "labels.txt"),
        **overrides,
    )
    return to_proto("pixel-8", sdk, OPTIONS)


@pytest.fixture(scope="module")
def server_config(tmp_path_factory):
    return ServerConfig(
        data_dir=tmp_path_factory.mktemp("server"), tenants=TENANTS, max_concurrent_jobs=2, max_upload_bytes=MAX_UPLOAD
    )


@pytest.fixture(scope="module")
def running(server_config):
    server, port = create_server("127.0.0.1:0", server_config)
    server.start()
    yield server, port
    shutdown(server, 0)


@pytest.fixture(scope="module")
def address(running):
    return f"127.0.0.1:{running[1]}"


@pytest.fixture(scope="module")
def alice(address):
    client = CompressionClient(address, "alice-build")
    yield client
    client.close()


@pytest.fixture(scope="module")
def stubs(address):
    with grpc.insecure_channel(address) as channel:
        yield rpc.CompressionServiceStub(channel), irpc.GRPCInferenceServiceStub(channel)


@pytest.fixture(scope="module")
def remote(alice, digits_files, tmp_path_factory):
    """One digits job submitted, watched and downloaded as alice."""
    job = alice.submit(digits_spec(digits_files), digits_files / "model.pt2", digits_files / "data.npz")
    events = []
    final = alice.watch(job.id, events.append)
    out = alice.download(final, tmp_path_factory.mktemp("remote") / "out")
    return job, final, events, out


@pytest.fixture(scope="module")
def local(digits_files, tmp_path_factory):
    from sdkgen.build import build
    from server.jobs.spec import from_proto

    request = from_proto(digits_spec(digits_files))
    out = tmp_path_factory.mktemp("local") / "out"
    build(digits_files / "model.pt2", "pixel-8", out, request.sdk, data=digits_files / "data.npz", options=OPTIONS)
    return out


# Files whose bytes carry measurements (latencies) or logs; everything else must be byte-identical.
MEASURED = {"report.json", "report.html", "summary.txt", "converter.log"}


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_submitted_job_downloads_the_same_tree_as_a_local_build(remote, local):
    job, final, events, out = remote
    assert job.state == pb.QUEUED and final.state == pb.SUCCEEDED, final.error
    assert {"analyze", "validate", "select"} <= {e.stage for e in events}
    assert final.summary and final.model_name == "digits" and final.model_version == "1"
    assert _tree(out) == _tree(local)
    differ = [p for p in _tree(out) if p not in MEASURED and (out / p).read_bytes() != (local / p).read_bytes()]
    assert differ == []
    assert {a.name for a in final.artifacts if a.archive} == {"python.zip", "candidates.zip", "cloud.zip"}


def test_finished_job_model_is_served_to_its_tenant_only(remote, stubs):
    import onnxruntime as ort

    _, final, _, out = remote
    x = np.random.default_rng(1).random((4, 1, 8, 8), dtype=np.float32)
    tensor = ipb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=x.shape)
    request = ipb.ModelInferRequest(model_name=final.model_name, inputs=[tensor], raw_input_contents=[x.tobytes()])
    reply = stubs[1].ModelInfer(request, metadata=auth("alice-infer"))
    got = np.frombuffer(reply.raw_output_contents[0], np.float32).reshape(4, 10)
    want = ort.InferenceSession(str(out / "cloud/model.onnx")).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(grpc.RpcError) as caught:
        stubs[1].ModelInfer(request, metadata=auth("bob-infer"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def _code(call, *args, **kwargs):
    with pytest.raises(grpc.RpcError) as caught:
        result = call(*args, **kwargs)
        list(result) if hasattr(result, "__iter__") and not hasattr(result, "id") else result
    return caught.value.code(), caught.value.details()


def test_tenants_never_see_each_others_jobs(remote, stubs):
    job_id = remote[1].id
    compression = stubs[0]
    assert _code(compression.GetJob, pb.GetJobRequest(job_id=job_id))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert (
        _code(compression.GetJob, pb.GetJobRequest(job_id=job_id), metadata=auth("nope"))[0]
        == grpc.StatusCode.UNAUTHENTICATED
    )
    code, details = _code(compression.GetJob, pb.GetJobRequest(job_id=job_id), metadata=auth("bob-build"))
    assert code == grpc.StatusCode.NOT_FOUND and "list yours with ListJobs" in details
    request = pb.DownloadArtifactRequest(job_id=job_id, name="report.json")
    assert _code(compression.DownloadArtifact, request, metadata=auth("bob-build"))[0] == grpc.StatusCode.NOT_FOUND
    assert (
        _code(compression.CancelJob, pb.CancelJobRequest(job_id=job_id), metadata=auth("bob-build"))[0]
        == grpc.StatusCode.NOT_FOUND
    )
    assert job_id not in [j.id for j in compression.ListJobs(pb.ListJobsRequest(), metadata=auth("bob-build")).jobs]
    assert job_id in [j.id for j in compression.ListJobs(pb.ListJobsRequest(), metadata=auth("alice-build")).jobs]
    code, details = _code(compression.ListJobs, pb.ListJobsRequest(), metadata=auth("alice-infer"))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "need a build token" in details


def test_artifacts_download_with_checksums_and_resume(remote, alice, tmp_path):
    final = remote[1]
    report = next(a for a in final.artifacts if a.name == "report.json")
    chunks = list(
        alice.stub.DownloadArtifact(
            pb.DownloadArtifactRequest(job_id=final.id, name="report.json", offset=10), metadata=alice.metadata
        )
    )
    data = b"".join(c.data for c in chunks)
    whole = (remote[3] / "report.json").read_bytes()
    assert chunks[0].offset == 10 and data == whole[10:] and hashlib.sha256(whole).hexdigest() == report.sha256
    code, details = _code(
        alice.stub.DownloadArtifact, pb.DownloadArtifactRequest(job_id=final.id, name="x.bin"), metadata=alice.metadata
    )
    assert code == grpc.StatusCode.NOT_FOUND and "its artifacts: " in details


def test_list_profiles(stubs):
    names = [p.name for p in stubs[0].ListProfiles(pb.ListProfilesRequest(), metadata=auth("alice-build")).profiles]
    assert "pixel-8" in names and "coral-edgetpu" in names


def _upload(spec, *files):
    """SubmitJob messages: spec, then for each (role, name, data, declared_size, declared_sha) a header and chunks."""
    yield pb.SubmitJobRequest(spec=spec)
    for role, name, data, size, sha in files:
        yield pb.SubmitJobRequest(file=pb.FileHeader(role=role, filename=name, size=size, sha256=sha))
        for i in range(0, len(data), 65536):
            yield pb.SubmitJobRequest(chunk=data[i : i + 65536])


def _model(digits_files, data=None, size=None, sha=None, name="model.pt2"):
    data = (digits_files / "model.pt2").read_bytes() if data is None else data
    return (
        pb.FileHeader.MODEL,
        name,
        data,
        len(data) if size is None else size,
        sha or hashlib.sha256(data).hexdigest(),
    )


BAD_UPLOADS = {
    "wrong sha256": (lambda f: [_model(f, sha="0" * 64)], grpc.StatusCode.DATA_LOSS, r"has sha256 .* declared 0000"),
    "breaks off": (lambda f: [_model(f, size=10 << 20)], grpc.StatusCode.RESOURCE_EXHAUSTED, r"at most 4194304 bytes"),
    "short": (
        lambda f: [_model(f, size=len((f / "model.pt2").read_bytes()) + 5)],
        grpc.StatusCode.INVALID_ARGUMENT,
        r"ended after \d+ of \d+ bytes",
    ),
    "no model": (lambda f: [], grpc.StatusCode.INVALID_ARGUMENT, r"has no model file"),
    "path in name": (lambda f: [_model(f, name="../../etc/passwd")], grpc.StatusCode.INVALID_ARGUMENT, r"not allowed"),
    "unknown profile": ("profile", grpc.StatusCode.INVALID_ARGUMENT, r"unknown hardware profile 'toaster'.*pixel-8"),
    "bad name": ("name", grpc.StatusCode.INVALID_ARGUMENT, r"SDK name 'digits' is not a valid class name"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_bad_uploads_get_clear_status_and_leave_nothing(case, stubs, digits_files, address, tmp_path):
    files, code, message = BAD_UPLOADS[case]
    spec = digits_spec(digits_files)
    if files == "profile":
        spec.profile, files = "toaster", lambda f: [_model(f)]
    elif files == "name":
        spec.name, files = "digits", lambda f: [_model(f)]
    got, details = _code(stubs[0].SubmitJob, _upload(spec, *files(digits_files)), metadata=auth("bob-build"))
    assert got == code, details
    assert __import__("re").search(message, details), details
    assert stubs[0].ListJobs(pb.ListJobsRequest(), metadata=auth("bob-build")).jobs == []


def test_client_that_breaks_off_mid_upload_leaves_no_job(stubs, digits_files, address):
    release = threading.Event()

    def stalled():
        yield pb.SubmitJobRequest(spec=digits_spec(digits_files))
        yield pb.SubmitJobRequest(
            file=pb.FileHeader(role=pb.FileHeader.MODEL, filename="model.pt2", size=1000, sha256="a" * 64)
        )
        yield pb.SubmitJobRequest(chunk=b"x" * 100)
        release.wait(30)

    future = stubs[0].SubmitJob.future(stalled(), metadata=auth("bob-build"))
    with pytest.raises(grpc.FutureTimeoutError):
        future.result(timeout=0.5)
    future.cancel()
    release.set()
    assert future.cancelled() or future.code() == grpc.StatusCode.CANCELLED
    assert stubs[0].ListJobs(pb.ListJobsRequest(), metadata=auth("bob-build")).jobs == []
    # the server keeps serving
    assert stubs[0].ListProfiles(pb.ListProfilesRequest(), metadata=auth("bob-build")).profiles


def test_unsupported_model_fails_its_job_with_the_loader_message(digits_files, address):
    client = CompressionClient(address, "bob-build")
    job = client.submit(
        digits_spec(digits_files), _write(digits_files.parent / "junk" / "model.pt2", b"not a model" * 10)
    )
    final = client.watch(job.id)
    client.close()
    assert final.state == pb.FAILED and "model.pt2" in final.error and final.artifacts == []


def test_cancel_stops_a_job_and_download_is_refused(digits_files, address, stubs):
    client = CompressionClient(address, "bob-build")
    job = client.submit(digits_spec(digits_files), digits_files / "model.pt2")
    cancelled = stubs[0].CancelJob(pb.CancelJobRequest(job_id=job.id), metadata=auth("bob-build"))
    final = client.watch(job.id)
    client.close()
    assert final.state == pb.CANCELLED and "cancelled" in final.error
    assert cancelled.state in (pb.CANCELLED, pb.RUNNING, pb.QUEUED)
    code, details = _code(stubs[0].CancelJob, pb.CancelJobRequest(job_id=job.id), metadata=auth("bob-build"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "already ended" in details
    code, details = _code(
        stubs[0].DownloadArtifact,
        pb.DownloadArtifactRequest(job_id=job.id, name="report.json"),
        metadata=auth("bob-build"),
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "once it has SUCCEEDED" in details


def test_worker_killed_mid_job_fails_that_job_and_the_server_keeps_serving(digits_files, running, stubs):
    server, port = running
    client = CompressionClient(f"127.0.0.1:{port}", "bob-build")
    job = client.submit(digits_spec(digits_files), digits_files / "model.pt2")

    def get():
        return client.stub.GetJob(pb.GetJobRequest(job_id=job.id), metadata=client.metadata)

    pid = wait_for(lambda: get().stage and server.jobs.runner.worker_pid(job.id), what="the worker's first progress")
    os.kill(pid, signal.SIGKILL)
    final = client.watch(job.id)
    client.close()
    assert final.state == pb.FAILED and final.failure == pb.WORKER_CRASHED and final.artifacts == []
    assert "worker process was killed by signal 9" in final.error and "the server is unaffected" in final.error
    assert stubs[1].ServerLive(ipb.ServerLiveRequest(), metadata=auth("bob-infer")).live
    assert stubs[0].ListProfiles(pb.ListProfilesRequest(), metadata=auth("bob-build")).profiles
    assert [
        j.state for j in stubs[0].ListJobs(pb.ListJobsRequest(), metadata=auth("bob-build")).jobs if j.id == job.id
    ] == [pb.FAILED]


def _submit(address, digits_files, out, *extra) -> int:
    from sdkgen.cli import main

    return main(
        [
            "submit",
            str(digits_files / "model.pt2"),
            "--server",
            address,
            "--token",
            "alice-build",
            "--profile",
            "pixel-8",
            "--platform",
            "python",
            "--name",
            "Digits",
            "--package",
            "com.example.digits",
            "--labels",
            str(digits_files / "labels.txt"),
            "--out",
            str(out),
            *extra,
        ]
    )


def test_sdkgen_submit_cli_writes_a_local_builds_layout(address, digits_files, local, tmp_path, capsys):
    out = tmp_path / "submitted"
    # the local build selects for size (which adds the mixed-precision candidate): ask the server for the same
    assert _submit(address, digits_files, out, "--data", str(digits_files / "data.npz"), "--select", "size") == 0
    assert _tree(out) == _tree(local)
    assert f"wrote {out.resolve()}" in " ".join(capsys.readouterr().err.split())


def test_sdkgen_submit_gate_failure_exits_like_a_local_build(address, stubs, digits_files, tmp_path, capsys):
    from sdkgen.cli import EXIT_GATE_FAILED

    out = tmp_path / "gate"
    assert _submit(address, digits_files, out, "--precision", "int8-full", "--min-cosine", "1.0") == EXIT_GATE_FAILED
    printed = " ".join(capsys.readouterr().err.split())
    assert "failed: no tflite candidate for profile 'pixel-8' passes the gate" in printed, printed
    assert "int8-full.tflite" in printed and "cos mean" in printed, printed  # the candidate table, as locally
    assert not out.exists()
    [job] = stubs[0].ListJobs(pb.ListJobsRequest(limit=1), metadata=auth("alice-build")).jobs
    assert job.state == pb.FAILED and job.failure == pb.GATE_FAILED


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _infer_tail(stub, tail: dict, sent: np.ndarray) -> np.ndarray:
    tensor = ipb.ModelInferRequest.InferInputTensor(name=tail["inputs"][0]["name"], datatype="INT8", shape=sent.shape)
    request = ipb.ModelInferRequest(
        model_name=tail["model_name"],
        model_version=tail["model_version"],
        inputs=[tensor],
        raw_input_contents=[sent.tobytes()],
    )
    reply = stub.ModelInfer(request, metadata=auth("alice-infer"))
    return np.frombuffer(reply.raw_output_contents[0], np.float32).reshape(tuple(reply.outputs[0].shape))


def test_split_job_tail_is_served_on_completion_and_after_a_restart(
    alice, stubs, server_config, digits_files, tmp_path
):
    """A --mode split job: its tail answers ModelInfer under the manifest's tail name, on completion and on restart."""
    from compressor.runtimes import OnnxRunner, TFLiteRunner

    job = alice.submit(digits_spec(digits_files, mode="split"), digits_files / "model.pt2", digits_files / "data.npz")
    final = alice.watch(job.id, lambda event: None)
    assert final.state == pb.SUCCEEDED, final.error
    out = alice.download(final, tmp_path / "out")
    manifest = json.loads((out / "model-manifest.json").read_text())
    split = manifest["split"]
    assert manifest["policy"]["mode"] == "split" and split["tail"]["model_name"] == "digits-tail"
    with np.load(digits_files / "data.npz") as data:
        x = data["x"][:1]
    [middle] = TFLiteRunner(out / split["head"]["file"]).run({"x": x})
    q = split["intermediate"]["quantization"]
    sent = np.clip(np.round(middle / q["scale"]) + q["zero_point"], -128, 127).astype(np.int8)
    want = OnnxRunner(out / split["tail"]["file"]).run({split["tail"]["inputs"][0]["name"]: sent})[0]
    np.testing.assert_allclose(_infer_tail(stubs[1], split["tail"], sent), want, rtol=1e-5, atol=1e-5)
    # a restarted server (a copy of this one's data directory) serves the tail again from its job store
    restarted = ServerConfig(data_dir=shutil.copytree(server_config.data_dir, tmp_path / "restarted"), tenants=TENANTS)
    server, port = create_server("127.0.0.1:0", restarted)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            got = _infer_tail(irpc.GRPCInferenceServiceStub(channel), split["tail"], sent)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    finally:
        shutdown(server, 0)
