"""A CompressionService client: upload a job, follow its progress, download its results into a build folder."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import grpc

from compressor.errors import EdgeForgeError, GateFailedError, InvalidInputError
from compressor.outdir import atomic_output_dir
from compressor.progress import ProgressEvent, ProgressSink
from compressor.sources import sha256_file
from server.errors import ChecksumError
from server.gen.edgeforge.v1 import compression_pb2 as pb
from server.gen.edgeforge.v1 import compression_pb2_grpc as rpc
from server.jobs.artifacts import unzip_dir

CHUNK = 1 << 20
MAX_MESSAGE = 64 << 20
RETRIES = 5
WATCH_RETRIES = 8  # reconnections in a row while a job is followed (about 20 s of backoff)


class RemoteJobError(EdgeForgeError, RuntimeError):
    """The server ran the job and it did not succeed; the message is the server's reason."""


class UntrustedArtifactError(ChecksumError):
    """The server named an artifact that would land outside the output folder (or is no plain file name)."""


_ENTRY = re.compile(r"^[A-Za-z0-9._-][A-Za-z0-9._/-]{0,254}$")


def safe_artifact_path(root: Path, name: str) -> Path:
    """``root / name`` for an artifact name the server sent, checked as a zip entry is: relative, no '..',
    no backslash or drive, no empty parts, and still inside ``root`` once resolved."""
    parts = PurePosixPath(name).parts
    if (
        not _ENTRY.match(name)
        or name.startswith("/")
        or any(p in ("", ".", "..") for p in name.split("/"))
        or not parts
    ):
        raise UntrustedArtifactError(
            f"the server sent an artifact named {name[:120]!r}, which is not a plain relative path; "
            "nothing was written for it. Check that --server points at an EdgeForge server you trust"
        )
    target = (root / name).resolve()
    if not target.is_relative_to(root.resolve()):
        raise UntrustedArtifactError(f"the server's artifact {name!r} would be written outside {root}")
    return target


def backoff(attempt: int, base: float = 0.2, cap: float = 5.0) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2...): exponential, capped, with full jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))


def job_error(job) -> EdgeForgeError:
    """The error that an unsuccessful job stands for, carrying the server's reason: a gate failure is the same
    error (and `sdkgen` exit status, and candidate table) as a local build's; anything else is a RemoteJobError."""
    message = f"job {job.id} {pb.JobState.Name(job.state).lower()}: {job.error}"
    if job.failure == pb.GATE_FAILED:
        return GateFailedError(message, table=job.summary)
    return RemoteJobError(message)


def _upload(spec, files: list[tuple[Any, Path]]) -> Iterator:
    yield pb.SubmitJobRequest(spec=spec)
    for role, path in files:
        yield pb.SubmitJobRequest(
            file=pb.FileHeader(role=role, filename=path.name, size=path.stat().st_size, sha256=sha256_file(path))
        )
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                yield pb.SubmitJobRequest(chunk=block)


class CompressionClient:
    def __init__(self, address: str, token: str | None = None, tls_ca: Path | None = None) -> None:
        options = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]
        if tls_ca:
            self.channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(tls_ca.read_bytes()), options)
        else:
            self.channel = grpc.insecure_channel(address, options)
        self.stub = rpc.CompressionServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def close(self) -> None:
        self.channel.close()

    def submit(self, spec, model: Path, data: Path | None = None):
        """Upload ``model`` (and ``data``) with ``spec``; return the queued Job."""
        for path in (model, data):
            if path is not None and not Path(path).is_file():
                raise InvalidInputError(f"{path} does not exist or is not a file")
        files = [(pb.FileHeader.MODEL, Path(model))] + ([(pb.FileHeader.DATA, Path(data))] if data else [])
        return self.stub.SubmitJob(_upload(spec, files), metadata=self.metadata)

    def watch(self, job_id: str, progress: ProgressSink | None = None):
        """Follow a job to its end (reconnecting from the last event seen); return the final Job."""
        seen, failures = 0, 0
        while True:
            try:
                for event in self.stub.WatchJob(
                    pb.WatchJobRequest(job_id=job_id, after_seq=seen), metadata=self.metadata
                ):
                    seen, failures = event.seq, 0
                    if event.HasField("job"):
                        return event.job
                    if progress:
                        progress(ProgressEvent(event.stage, event.done, event.total, event.message))
            except grpc.RpcError as exc:
                failures += 1
                if exc.code() != grpc.StatusCode.UNAVAILABLE or failures > WATCH_RETRIES:
                    raise
                time.sleep(backoff(failures))  # the server restarts or the link drops: back off, resume

    def download(self, job, out: Path) -> Path:
        """Download every artifact of a succeeded job into ``out`` (the layout of a local ``sdkgen build``),
        atomically."""
        if job.state != pb.SUCCEEDED:
            raise job_error(job)
        with atomic_output_dir(out) as staging:
            for artifact in job.artifacts:
                target = safe_artifact_path(staging, artifact.name)
                if artifact.archive and not artifact.name.endswith(".zip"):
                    raise UntrustedArtifactError(f"the server marked {artifact.name!r} an archive; it is no .zip")
                self.download_artifact(job.id, artifact, target)
                if artifact.archive:
                    unzip_dir(target, safe_artifact_path(staging, artifact.name.removesuffix(".zip")))
                    target.unlink()
        return Path(out).resolve()

    def download_artifact(self, job_id: str, artifact, target: Path) -> None:
        """Stream one artifact to ``target``, resuming after a dropped connection; check size and sha256."""
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as f:
            for attempt in range(RETRIES):
                try:
                    request = pb.DownloadArtifactRequest(job_id=job_id, name=artifact.name, offset=f.tell())
                    for chunk in self.stub.DownloadArtifact(request, metadata=self.metadata):
                        if f.tell() + len(chunk.data) > artifact.size:
                            raise ChecksumError(
                                f"the server sent more of {artifact.name} than its announced {artifact.size} bytes"
                            )
                        f.write(chunk.data)
                    break
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == RETRIES - 1:
                        raise
                    time.sleep(backoff(attempt + 1))
        if sha256_file(target) != artifact.sha256:
            raise ChecksumError(f"downloaded {artifact.name} does not match its sha256; download it again")
