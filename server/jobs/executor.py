"""Where jobs run: the executor interface and the choice between its implementations (``--executor``).

- ``local`` (:class:`server.jobs.runner.JobRunner`, the default): sandboxed worker processes on this machine.
- ``rq`` (:class:`server.jobs.rq_executor.RqExecutor`): a Redis queue served by ``sdkgen worker`` processes on
  any number of machines, sharing the job store (PostgreSQL) and the artifact store (an fsspec URL).

Either way the service stages a job's uploads in ``upload_dir(job_id)`` before ``submit``, and every build runs
in the same sandbox (:mod:`server.jobs.execution`).
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from pathlib import Path

from server.errors import BusyError
from server.jobs.store import JobRecord

EXECUTORS = ("local", "rq")


class Executor(ABC):
    """Runs submitted jobs and reports their progress and outcome through the job store."""

    work_root: Path
    min_free_bytes: int

    @property
    def uploads_root(self) -> Path:
        return self.work_root / "uploads"

    def upload_dir(self, job_id: str) -> Path:
        return self.uploads_root / job_id

    @abstractmethod
    def start(self) -> None:
        """Recover what the last run left (queued jobs run again), then start taking jobs."""

    @abstractmethod
    def stop(self) -> None:
        """Stop taking jobs; what is queued stays queued for the next start."""

    @abstractmethod
    def submit(self, job: JobRecord) -> None:
        """Queue ``job``, whose uploads are in ``upload_dir(job.id)``."""

    @abstractmethod
    def cancel(self, job: JobRecord) -> None:
        """Cancel a queued job at once, or stop a running one's worker; NotReadyError once it has ended."""

    def worker_pid(self, job_id: str) -> int | None:
        """The pid of the process building ``job_id`` on this machine (None when not running here)."""
        return None

    def check_space(self) -> None:
        """BusyError when the work folder's disk has less than the configured free space."""
        self.work_root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.work_root).free
        if free < self.min_free_bytes:
            raise BusyError(
                f"the server is short of disk space ({free // (1 << 20)} MiB free, a job needs "
                f"{self.min_free_bytes // (1 << 20)} MiB); submit the job again later"
            )
