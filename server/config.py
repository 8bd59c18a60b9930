"""Server settings: one frozen, validated object built by ``sdkgen serve`` (flags and ``--config`` TOML) or by tests.

Defaults are the safe ones: every job runs in the sandbox, and admission limits bound what one client
can hold (threads, streams, queued jobs, request sizes, in-flight inference bytes).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MiB = 1024 * 1024
_SHA256 = r"^[0-9a-f]{64}$"


class Tenant(BaseModel):
    """A tenant and its bearer tokens: build tokens use CompressionService, inference tokens ModelInfer.

    A token is given either in clear (``build_tokens``) or, better, as its sha256 hex digest
    (``build_token_sha256``); the server keeps only digests either way."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    build_tokens: tuple[str, ...] = Field((), description="clear build tokens: hashed at once, never kept")
    inference_tokens: tuple[str, ...] = Field((), description="clear inference tokens: hashed at once, never kept")
    build_token_sha256: tuple[Annotated[str, Field(pattern=_SHA256)], ...] = Field(
        (), description="sha256 hex digests of build tokens"
    )
    inference_token_sha256: tuple[Annotated[str, Field(pattern=_SHA256)], ...] = Field(
        (), description="sha256 hex digests of inference tokens"
    )
    max_queued_jobs: int | None = Field(None, ge=0, description="this tenant's queue quota (default: the server's)")

    @model_validator(mode="before")
    @classmethod
    def _hash_clear_tokens(cls, data):
        """Keep only digests: clear tokens become sha256 hex digests as the tenant is built."""
        if isinstance(data, dict):
            data = dict(data)
            for scope in ("build", "inference"):
                clear = data.pop(f"{scope}_tokens", ()) or ()
                if isinstance(clear, str):
                    clear = (clear,)
                digests = [hashlib.sha256(str(t).encode()).hexdigest() for t in clear]
                data[f"{scope}_token_sha256"] = (*(data.get(f"{scope}_token_sha256") or ()), *digests)
        return data


class SandboxConfig(BaseModel):
    """``[sandbox]``: how each job's worker is confined (see server/jobs/sandbox.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="run workers under bubblewrap; false only for trusted models")
    uid: int = Field(65534, ge=1, description="user id the worker runs as (nobody)")
    gid: int = Field(65534, ge=1, description="group id the worker runs as (nogroup)")
    address_space_mb: int = Field(24576, ge=512, description="RLIMIT_AS of the worker")
    cpu_seconds: int = Field(7200, ge=10, description="RLIMIT_CPU of the worker")
    file_size_mb: int = Field(8192, ge=1, description="RLIMIT_FSIZE: largest file the worker may write")
    processes: int = Field(4096, ge=16, description="RLIMIT_NPROC (threads count) for the sandbox uid")
    open_files: int = Field(4096, ge=64, description="RLIMIT_NOFILE of the worker")
    shm_mb: int = Field(64, ge=1, description="size of the worker's private /dev/shm")
    extra_ro_paths: tuple[Path, ...] = Field((), description="more host folders the worker may read")


class ServerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path | None = Field(None, description="job store and artifacts; None serves inference only")
    rpc_threads: int = Field(32, ge=4, description="threads answering RPCs")
    max_concurrent_rpcs: int = Field(256, ge=1, description="RPCs in flight at once; more get RESOURCE_EXHAUSTED")
    max_streams: int | None = Field(
        None, ge=1, description="long-lived streams (uploads, watches, downloads) at once; default rpc_threads // 2"
    )
    max_streams_per_tenant: int = Field(4, ge=1, description="long-lived streams one tenant may hold open")
    upload_idle_s: float = Field(30.0, gt=0, description="an upload sending nothing for this long is cancelled")
    max_queued_jobs: int = Field(16, ge=0, description="jobs one tenant may have queued or running")
    min_free_disk_mb: int = Field(1024, ge=0, description="free space needed to accept or start a job")
    max_message_bytes: int = Field(16 * MiB, ge=MiB, description="largest gRPC message either way")
    max_upload_bytes: int = Field(2048 * MiB, ge=1, description="largest model + data upload of one job")
    chunk_bytes: int = Field(1 * MiB, ge=1024, description="size of DownloadArtifact chunks")
    max_concurrent_jobs: int = Field(1, ge=1)
    job_timeout_s: float = Field(3600.0, gt=0)
    inference_threads: int = Field(1, ge=1, description="onnxruntime intra-op threads per model")
    max_batch: int = Field(1, ge=1, description="ModelInfer dynamic batching: most rows per run (1: off)")
    batch_window_ms: float = Field(0.0, ge=0, description="how long a batch waits for more (0: only queued ones)")
    max_request_rows: int = Field(256, ge=1, description="ModelInfer: most rows (first dimension) per request")
    max_request_elements: int = Field(4 << 20, ge=1, description="ModelInfer: most elements over all inputs")
    model_limits: dict[str, tuple[int, int]] = Field(
        {}, description="per served model name: (max rows, max elements), overriding the two above"
    )
    inference_memory_mb: int = Field(512, ge=1, description="ModelInfer request bytes held at once, all callers")
    tenants: tuple[Tenant, ...] = Field((), description="empty: no auth (every call is tenant 'default')")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    http_port: int | None = Field(None, ge=0, le=65535, description="OIP v2 over HTTP/REST on this port (None: off)")
    status_address: str | None = Field(None, description="host:port of the read-only HTTP status page; None: off")
    secret_paths: tuple[Path, ...] = Field((), description="files jobs must never see (auth file, TLS key)")
    sandbox: SandboxConfig = SandboxConfig()
    grace_s: float = Field(10.0, ge=0, description="time given to in-flight RPCs on shutdown")
    executor: Literal["local", "rq"] = Field(
        "local", description="local: sandboxed workers in this process's machine; rq: a Redis queue of sdkgen workers"
    )
    queue_url: str | None = Field(None, description="with executor rq: the Redis URL, redis://host:6379/0")
    store_url: str | None = Field(None, description="job store: sqlite:///PATH or postgresql://...; None: data_dir")
    artifacts_url: str | None = Field(None, description="artifact store: a folder or fsspec URL; None: data_dir")
    job_retries: int = Field(2, ge=0, description="with executor rq: times a job lost with its worker is run again")

    @model_validator(mode="after")
    def _streams_leave_threads(self) -> ServerConfig:
        if self.streams_limit >= self.rpc_threads:
            raise ValueError(
                f"max_streams ({self.streams_limit}) must be below rpc_threads ({self.rpc_threads}) so that "
                "unary calls (ModelInfer, ListJobs) always find a thread"
            )
        return self

    @model_validator(mode="after")
    def _queue_needs_its_url(self) -> ServerConfig:
        if self.executor == "rq" and not self.queue_url:
            raise ValueError("executor 'rq' needs queue_url (--queue redis://HOST:6379/0)")
        return self

    @property
    def streams_limit(self) -> int:
        return self.max_streams or max(1, self.rpc_threads // 2)

    def limits_for(self, model: str) -> tuple[int, int]:
        """(max rows, max elements) of one ModelInfer request to ``model``."""
        return self.model_limits.get(model, (self.max_request_rows, self.max_request_elements))


class WorkerConfig(BaseModel):
    """``sdkgen worker``: one queue worker's settings (handed to each job's process as JSON in its environment)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue_url: str = Field(description="the Redis URL of the queue, redis://host:6379/0")
    store_url: str = Field(description="the job store the server uses: postgresql://... (or sqlite:///PATH)")
    artifacts_url: str = Field(description="the artifact store the server uses: a folder or an fsspec URL")
    work_dir: Path = Field(description="this worker's own scratch folder (job folders while they build)")
    name: str = Field(pattern=r"^[A-Za-z0-9_.:@-]{1,100}$", description="the worker's name, unique in the queue")
    heartbeat_s: int = Field(10, ge=1, le=300, description="how often the worker reports it is alive")
    min_free_disk_mb: int = Field(1024, ge=0, description="free space needed in work_dir to start a job")
    burst: bool = Field(False, description="stop once the queue is empty (tests, batch machines)")
    secret_paths: tuple[Path, ...] = Field((), description="files jobs must never see (the worker's --config)")
    sandbox: SandboxConfig = SandboxConfig()
