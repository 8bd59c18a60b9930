"""Server settings: one frozen, validated object built by ``sdkgen serve`` or by tests."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

MiB = 1024 * 1024


class Tenant(BaseModel):
    """A tenant and its bearer tokens: build tokens use CompressionService, inference tokens ModelInfer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    build_tokens: tuple[str, ...] = ()
    inference_tokens: tuple[str, ...] = ()


class ServerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path | None = Field(None, description="job store and artifacts; None serves inference only")
    rpc_threads: int = Field(16, ge=1, description="threads answering RPCs")
    max_message_bytes: int = Field(64 * MiB, ge=MiB, description="largest gRPC message either way")
    max_upload_bytes: int = Field(2048 * MiB, ge=1, description="largest model + data upload of one job")
    chunk_bytes: int = Field(1 * MiB, ge=1024, description="size of DownloadArtifact chunks")
    max_concurrent_jobs: int = Field(1, ge=1)
    job_timeout_s: float = Field(3600.0, gt=0)
    inference_threads: int = Field(1, ge=1, description="onnxruntime intra-op threads per model")
    max_batch: int = Field(1, ge=1, description="ModelInfer dynamic batching: most rows per run (1: off)")
    batch_window_ms: float = Field(0.0, ge=0, description="how long a batch waits for more (0: only queued ones)")
    tenants: tuple[Tenant, ...] = Field((), description="empty: no auth (every call is tenant 'default')")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    http_port: int | None = Field(None, ge=0, le=65535, description="OIP v2 over HTTP/REST on this port (None: off)")
    grace_s: float = Field(10.0, ge=0, description="time given to in-flight RPCs on shutdown")
    status_address: str | None = Field(None, description="host:port of the read-only HTTP status page; None: off")
