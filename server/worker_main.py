"""``sdkgen worker``: take jobs from the Redis queue and build them in the sandbox, on any machine.

:func:`run` checks everything a job will need before taking one (the sandbox tools, the queue, the job store,
the artifact store), holds a lock on its work folder (one worker per folder; leftovers of a killed worker are
removed), then runs an RQ :class:`EdgeForgeWorker`: a ``SpawnWorker`` (each job in a fresh process, no fork of a
process holding connections) with the JSON serializer, taking from every lane in turn, whose heartbeat TTL is
two beats, so that a job whose worker was SIGKILLed is retried elsewhere within seconds, not minutes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from pathlib import Path

from rq.worker import SpawnWorker

from server.config import WorkerConfig
from server.jobs import rq_queues
from server.jobs.artifacts import ArtifactStore
from server.jobs.rq_task import ENV
from server.jobs.sandbox import Sandbox
from server.jobs.stores import open_store

log = logging.getLogger("edgeforge.worker")
LOCK = ".worker.lock"


class EdgeForgeWorker(SpawnWorker):
    """RQ's SpawnWorker, round-robin over the lanes, with a heartbeat TTL of two beats (RQ adds 60 s); it removes
    a job's folder once its horse has ended, also when a stop-job command killed it."""

    work_dir: Path

    def execute_job(self, job, queue) -> None:
        if job.func_name not in rq_queues.ALLOWED:  # checked before a process is spawned for it
            log.error("job %s names %r, not EdgeForge's task: refused, not run", job.id, job.func_name[:120])
            self.handle_job_failure(job, queue=queue, exc_string="refused: not an EdgeForge job")
            return
        try:
            super().execute_job(job, queue)
        finally:
            shutil.rmtree(self.work_dir / "builds" / job.id, ignore_errors=True)

    def get_heartbeat_ttl(self, job) -> int:
        beat = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            return int(min(job.timeout - self.current_job_working_time, beat)) + beat
        return 2 * beat

    def reorder_queues(self, reference_queue) -> None:
        position = self._ordered_queues.index(reference_queue)
        self._ordered_queues = self._ordered_queues[position + 1 :] + self._ordered_queues[: position + 1]


class _QuietMaintenance(logging.Filter):
    """Drop RQ's line per queue and heartbeat about cleaning registries (8 lanes: 8 lines a beat)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "cleaning registries" not in record.getMessage()


def run(config: WorkerConfig) -> int:
    """Serve the queue until SIGTERM/SIGINT (warm: the running job finishes) or, with ``burst``, until it is empty."""
    Sandbox(config.sandbox)  # SandboxUnavailableError now, not at the first job
    config.work_dir.mkdir(parents=True, exist_ok=True)
    lock = open(config.work_dir / LOCK, "w")  # noqa: SIM115 - held for the worker's lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        from compressor.errors import InvalidInputError

        raise InvalidInputError(f"another worker uses {config.work_dir}; give each worker its own --work-dir") from None
    shutil.rmtree(config.work_dir / "builds", ignore_errors=True)  # a killed worker's job folders
    open_store(config.store_url, config.work_dir / "jobs.sqlite").close()  # reachable, tables created
    ArtifactStore(config.artifacts_url, clean_stale=False)
    connection = rq_queues.connect(config.queue_url)
    os.environ[ENV] = config.model_dump_json()
    worker = EdgeForgeWorker(
        rq_queues.queues(connection),
        connection=connection,
        name=config.name,
        serializer=rq_queues.SERIALIZER,
        job_class=rq_queues.EdgeForgeJob,
        job_monitoring_interval=config.heartbeat_s,
        maintenance_interval=config.heartbeat_s,
        worker_ttl=config.heartbeat_s + 15,  # RQ blocks on the queue for worker_ttl - 15 s between maintenance runs
    )
    worker.work_dir = config.work_dir
    logging.getLogger("rq.worker").addFilter(_QuietMaintenance())
    log.info("worker %s: taking jobs from %s", config.name, ", ".join(worker.queue_names()))
    worker.work(burst=config.burst, logging_level="INFO", with_scheduler=False)
    lock.close()
    return 0
