"""``--executor rq``: jobs go to a Redis queue (RQ) and are built by ``sdkgen worker`` processes anywhere.

The server keeps what it has always owned: the job record (created QUEUED in the shared store), admission,
cancellation and serving finished models. A job's uploads are copied to the shared artifact store
(``.uploads/<job_id>/``) and its RQ job (same id; JSON arguments ``[job_id, timeout_s]``) is enqueued with
``Retry(max=job_retries)``, so a job whose worker dies is run again by another one (see
:mod:`server.jobs.rq_task`). A watcher thread serves each model that a worker finished.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from redis.exceptions import RedisError
from rq import Callback, Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from server.errors import NotReadyError, QueueUnavailableError
from server.jobs import rq_queues
from server.jobs.artifacts import ArtifactStore
from server.jobs.executor import Executor
from server.jobs.store import CANCELLED, FAILED, QUEUED, RUNNING, JobRecord, Store, now

log = logging.getLogger("edgeforge.jobs")
WATCH_S = 1.0  # how often the server looks for jobs finished by workers
CLOCK_SKEW = timedelta(minutes=2)  # workers stamp the store with their own clocks
TIMEOUT_GRACE_S = 120  # RQ's own job_timeout: the worker's limit plus this, a backstop only
RESULT_TTL_S = 24 * 3600


class RqExecutor(Executor):
    """Queue jobs in Redis for ``sdkgen worker``; see the module docstring."""

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore,
        work_root: Path,
        *,
        queue_url: str,
        timeout_s: float,
        retries: int,
        on_success: Callable[[JobRecord], None],
        min_free_bytes: int = 0,
    ) -> None:
        self.store, self.artifacts, self.work_root = store, artifacts, work_root
        self.timeout_s, self.retries, self.on_success = timeout_s, retries, on_success
        self.min_free_bytes = min_free_bytes
        self.redis = rq_queues.connect(queue_url)
        self._served: set[str] = set()
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="rq-finished-jobs", daemon=True)

    def start(self) -> None:
        """Queue again what a crash left unqueued, mark the jobs served already, start watching for finished ones."""
        for stale in self.uploads_root.glob(".incoming-*"):
            shutil.rmtree(stale, ignore_errors=True)
        for job in self.store.in_state(QUEUED):
            if not Job.exists(job.id, connection=self.redis):
                self._requeue(job)
        self._since = now()
        self._watcher.start()

    def _requeue(self, job: JobRecord) -> None:
        if self.upload_dir(job.id).is_dir():
            self.submit(job)
        elif self.artifacts.has_upload(job.id):
            self._enqueue(job)
        else:
            self.store.update(
                job.id,
                only_from=(QUEUED,),
                state=FAILED,
                failure="INTERRUPTED",
                error="interrupted: the server stopped before this job was queued; submit it again",
            )

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher.is_alive():
            self._watcher.join(timeout=10)
        self.redis.close()

    def submit(self, job: JobRecord) -> None:
        """Copy the uploads to the shared artifact store and enqueue the job; QueueUnavailableError (and the job
        FAILED) when Redis refuses it."""
        self.artifacts.put_upload(job.id, self.upload_dir(job.id))
        shutil.rmtree(self.upload_dir(job.id), ignore_errors=True)
        self._enqueue(job)

    def _enqueue(self, job: JobRecord) -> None:
        queue = Queue(rq_queues.lane(job.tenant), connection=self.redis, serializer=rq_queues.SERIALIZER)
        try:
            queue.enqueue(
                rq_queues.TASK,
                job.id,
                self.timeout_s,
                job_id=job.id,
                job_timeout=int(self.timeout_s) + TIMEOUT_GRACE_S,
                retry=Retry(max=self.retries) if self.retries else None,
                on_failure=Callback(rq_queues.ON_FAILURE),
                result_ttl=RESULT_TTL_S,
                failure_ttl=RESULT_TTL_S,
                description=f"edgeforge job {job.id} of {job.tenant}",
            )
        except RedisError as exc:
            self.store.update(
                job.id, only_from=(QUEUED,), state=FAILED, failure="INTERNAL", error="the job queue refused this job"
            )
            self.artifacts.drop_upload(job.id)
            raise QueueUnavailableError(f"the job queue does not answer ({exc}); submit the job again later") from None

    def cancel(self, job: JobRecord) -> None:
        """Queued: CANCELLED at once. Running: CANCELLED in the store (the worker polls it) and the RQ stop-job
        command to its worker, which kills the build at once."""
        if self.store.update(job.id, only_from=(QUEUED,), state=CANCELLED, error="cancelled before it started"):
            self._forget(job.id)
            return
        if self.store.update(
            job.id, only_from=(RUNNING,), state=CANCELLED, error="cancelled while running; the worker was stopped"
        ):
            self.artifacts.drop_upload(job.id)  # the worker has its copy; a cancelled job never runs again
            try:
                send_stop_job_command(self.redis, job.id, serializer=rq_queues.SERIALIZER)
            except (InvalidJobOperation, NoSuchJobError, RedisError) as exc:
                log.info("job %s: stop command not sent (%s); its worker stops it from the store", job.id, exc)
            return
        raise NotReadyError(f"job {job.id} has already ended ({self.store.get(job.id).state}); nothing to cancel")

    def _forget(self, job_id: str) -> None:
        # a worker taking it anyway finds it CANCELLED in the store and skips it
        with contextlib.suppress(NoSuchJobError, InvalidJobOperation, RedisError):
            Job.fetch(job_id, connection=self.redis, serializer=rq_queues.SERIALIZER).cancel()
        self.artifacts.drop_upload(job_id)

    def _watch(self) -> None:
        """Serve the models of jobs that workers finished (any node; each once)."""
        while not self._stopping.wait(WATCH_S):
            try:
                since = (datetime.fromisoformat(self._since) - CLOCK_SKEW).isoformat(timespec="milliseconds")
                for job in self.store.succeeded_since(since):
                    self._since = max(self._since, job.updated_at)
                    if job.id not in self._served:
                        self._served.add(job.id)
                        self.on_success(job)
            except Exception:
                log.exception("looking for finished jobs failed; trying again")
