"""Jobs as the servicer sees them: submit, look up, watch, cancel, download; every call scoped to a tenant."""

from __future__ import annotations

import builtins
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from server.config import MiB, ServerConfig
from server.errors import BusyError, NotReadyError
from server.inference.repository import ModelRepository
from server.jobs import uploads
from server.jobs.artifacts import ArtifactInfo, ArtifactStore
from server.jobs.execution import CLOUD_MODEL, TAIL_INFO, TAIL_MODEL
from server.jobs.executor import Executor
from server.jobs.runner import JobRunner
from server.jobs.sandbox import Sandbox
from server.jobs.spec import from_proto, to_dict
from server.jobs.store import SUCCEEDED, JobRecord, Store
from server.jobs.stores import open_store

WATCH_POLL_S = 1.0


class JobService:
    """The jobs of one server: its job store and artifact store (local or shared by URL) and its executor."""

    def __init__(self, data_dir: Path, config: ServerConfig, repository: ModelRepository) -> None:
        self.config, self.repository, self.data_dir = config, repository, data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)  # the store, uploads and artifacts: the server's alone
        self.quotas = {t.name: t.max_queued_jobs for t in config.tenants if t.max_queued_jobs is not None}
        self.store: Store = open_store(config.store_url, data_dir / "jobs.sqlite")
        self.artifacts = ArtifactStore(
            config.artifacts_url or data_dir / "artifacts", clean_stale=config.executor == "local"
        )
        self.runner = self._executor(data_dir)

    def _executor(self, data_dir: Path) -> Executor:
        """The executor ``config.executor`` names (see :mod:`server.jobs.executor`)."""
        config = self.config
        if config.executor == "rq":
            from server.jobs.rq_executor import RqExecutor

            return RqExecutor(
                self.store,
                self.artifacts,
                data_dir / "work",
                queue_url=str(config.queue_url),
                timeout_s=config.job_timeout_s,
                retries=config.job_retries,
                on_success=self.serve_model,
                min_free_bytes=config.min_free_disk_mb * MiB,
            )
        return JobRunner(
            self.store,
            self.artifacts,
            data_dir / "work",
            concurrency=config.max_concurrent_jobs,
            timeout_s=config.job_timeout_s,
            on_success=self.serve_model,
            sandbox=Sandbox(config.sandbox, hidden=(data_dir, *config.secret_paths)),
            min_free_bytes=config.min_free_disk_mb * MiB,
        )

    def start(self) -> None:
        """Serve every finished job's cloud model again, recover interrupted jobs, start running queued ones."""
        for job in self.store.in_state(SUCCEEDED):
            self.serve_model(job)
        self.runner.start()

    def stop(self) -> None:
        self.runner.stop()
        self.store.close()

    def serve_model(self, job: JobRecord) -> None:
        """Serve a finished job's cloud model and, for a split build, its tail under the manifest's tail name."""
        if job.cloud_model and job.model_name:
            model = Path(job.cloud_model)
            if not model.is_absolute():  # built by a queue worker: the served files are in the artifact store
                model = self.data_dir / "models" / job.id / CLOUD_MODEL
                if not model.is_file():
                    self.artifacts.fetch_served(job.artifacts_key, model.parent)
            self.repository.register(job.model_name, job.model_version, model, tenant=job.tenant)
            folder = model.parent
            if (folder / TAIL_INFO).is_file():
                tail = json.loads((folder / TAIL_INFO).read_text())
                self.repository.register(
                    tail["model_name"], tail["model_version"], folder / TAIL_MODEL, tenant=job.tenant
                )

    def submit(self, tenant: str, spec, parts: Iterator) -> JobRecord:
        """Check the spec, the tenant's quota and the free space, receive the files (verified), then queue the job;
        nothing is kept on any error."""
        from_proto(spec)
        self._check_quota(tenant)
        self.runner.check_space()
        incoming = self.runner.uploads_root
        incoming.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=incoming))
        try:
            uploads.receive(parts, staging, self.config.max_upload_bytes)
            self._check_quota(tenant)  # again: other uploads of this tenant may have finished meanwhile
            job = self.store.create(tenant, to_dict(spec))
            os.replace(staging, self.runner.upload_dir(job.id))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.runner.submit(job)
        return job

    def _check_quota(self, tenant: str) -> None:
        quota = self.quotas.get(tenant, self.config.max_queued_jobs)
        active = self.store.active(tenant)
        if active >= quota:
            raise BusyError(
                f"tenant {tenant!r} has {active} jobs queued or running, its quota is {quota}; wait for one to "
                "finish (sdkgen submit follows it) or cancel one, then submit again"
            )

    def get(self, tenant: str, job_id: str) -> JobRecord:
        return self.store.get(job_id, tenant)

    def list(self, tenant: str, state: str | None, limit: int) -> list[JobRecord]:
        return self.store.list(tenant, state, limit)

    def cancel(self, tenant: str, job_id: str) -> JobRecord:
        self.runner.cancel(self.store.get(job_id, tenant))
        return self.store.get(job_id, tenant)

    def artifact_list(self, job: JobRecord) -> builtins.list[ArtifactInfo]:
        return self.artifacts.list(job.artifacts_key) if job.state == SUCCEEDED else []

    def artifact_path(self, job: JobRecord, name: str) -> tuple[Path, ArtifactInfo]:
        """A local file with a succeeded job's artifact (for the status page) and its info."""
        return self.artifacts.path(job.artifacts_key, name, self.data_dir / "cache")

    def watch(self, tenant: str, job_id: str, after_seq: int, active) -> Iterator[tuple[int, object, JobRecord | None]]:
        """Yield (seq, ProgressEvent, None) from ``after_seq`` on, then (seq, None, job) once the job has ended."""
        while active():
            job = self.store.get(job_id, tenant)
            for seq, event in self.store.events(job_id, after_seq):
                after_seq = seq
                yield seq, event, None
            if job.finished:
                yield after_seq, None, job
                return
            self.store.wait_for_change(WATCH_POLL_S)

    def download(self, tenant: str, job_id: str, name: str, offset: int):
        """Yield (info, offset, bytes) of a succeeded job's artifact."""
        job = self.store.get(job_id, tenant)
        if job.state != SUCCEEDED:
            raise NotReadyError(f"job {job_id} is {job.state}; artifacts can be downloaded once it has SUCCEEDED")
        yield from self.artifacts.read_chunks(job.artifacts_key, name, offset, self.config.chunk_bytes)
