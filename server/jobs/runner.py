"""Run queued jobs in sandboxed worker processes: fair scheduling, a concurrency limit, a timeout,
cancellation, crash handling, and a runner that outlives any failure of its store.

Each runner thread takes the next job from a :class:`FairQueue`, moves its uploads into a job folder,
starts ``python -m server.jobs.worker`` through :class:`Sandbox`, reads its JSON-line messages
(:mod:`server.jobs.messages`) and records the outcome.  An error while recording (the store's disk is
full, SQLite fails) fails that job if it still can, or leaves it RUNNING for the next start's recovery;
the thread goes on with the next job either way.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from compressor.progress import ProgressEvent
from server.errors import BusyError, NotReadyError, WorkerProtocolError
from server.jobs.artifacts import ArtifactStore, check_tree
from server.jobs.execution import TAIL_INFO, TAIL_MODEL, crash_message, prepare_folder, run_build
from server.jobs.executor import Executor
from server.jobs.sandbox import JobFolder, Sandbox
from server.jobs.scheduler import STOP, FairQueue
from server.jobs.store import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, JobRecord, Store

log = logging.getLogger("edgeforge.jobs")
INTERRUPTED = "interrupted: the server stopped while this job was running; submit it again"
INTERNAL = "internal server error while running this job; the server's log has the details"
UNRECORDED = "the server could not record this job's outcome (its job store failed); submit the job again"
RETRY_S = 5.0  # how often an idle runner thread retries recording outcomes its store refused


class JobRunner(Executor):
    """The local executor (``--executor local``): jobs wait in a fair queue; ``concurrency`` threads each drive one
    sandboxed worker at a time, on this machine."""

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore,
        work_root: Path,
        *,
        concurrency: int,
        timeout_s: float,
        on_success: Callable[[JobRecord], None],
        sandbox: Sandbox,
        min_free_bytes: int = 0,
    ) -> None:
        self.store, self.artifacts, self.work_root = store, artifacts, work_root
        self.timeout_s, self.on_success, self.sandbox = timeout_s, on_success, sandbox
        self.min_free_bytes = min_free_bytes
        self._queue = FairQueue()
        self._cancel: dict[str, threading.Event] = {}
        self._workers: dict[str, int] = {}  # job id -> pid of its running worker (bwrap) process
        self._stopping = threading.Event()
        self._unrecorded: dict[str, str] = {}  # job id -> reason, for jobs whose end the store refused
        self._threads = [
            threading.Thread(target=self._loop, name=f"job-runner-{i}", daemon=True) for i in range(concurrency)
        ]

    def folder(self, job_id: str) -> JobFolder:
        return JobFolder(self.work_root / "builds" / job_id)

    def start(self) -> None:
        """Recover from the last run (interrupted jobs fail, queued ones run again), then start the threads."""
        for stale in self.uploads_root.glob(".incoming-*"):  # uploads cut off by a crash: never a job
            shutil.rmtree(stale, ignore_errors=True)
        for job in self.store.in_state(RUNNING):
            self._fail(job.id, "INTERRUPTED", INTERRUPTED)
            self._cleanup(job.id)
        for job in self.store.in_state(QUEUED):
            self._queue.put(job.tenant, job.id)
        for thread in self._threads:
            thread.start()

    def submit(self, job: JobRecord) -> None:
        self._queue.put(job.tenant, job.id)

    def worker_pid(self, job_id: str) -> int | None:
        """The pid of the process building ``job_id`` right now (None when it is not running)."""
        return self._workers.get(job_id)

    def cancel(self, job: JobRecord) -> None:
        """Cancel a queued job at once, or stop a running one's worker; NotReadyError once it has ended."""
        if self.store.update(job.id, only_from=(QUEUED,), state=CANCELLED, error="cancelled before it started"):
            self._cleanup(job.id)
            return
        event = self._cancel.get(job.id)
        if event is None:
            raise NotReadyError(f"job {job.id} has already ended ({self.store.get(job.id).state}); nothing to cancel")
        event.set()

    def stop(self) -> None:
        """Stop running workers (their jobs fail as interrupted); queued jobs stay queued for the next start."""
        self._stopping.set()
        for event in list(self._cancel.values()):
            event.set()
        self._queue.stop(len(self._threads))
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=15)

    def _loop(self) -> None:
        while True:
            job_id = self._queue.get(timeout=RETRY_S)
            if job_id is STOP or self._stopping.is_set():
                return
            self._record_unrecorded()
            if job_id is None:
                continue
            try:
                self._one(job_id)
            except Exception:
                log.exception("job %s: the store refused its outcome; failing it when the store recovers", job_id)
                self._unrecorded[job_id] = UNRECORDED

    def _record_unrecorded(self) -> None:
        """Fail the jobs whose end could not be recorded, now that the store may take writes again."""
        for job_id, reason in list(self._unrecorded.items()):
            try:
                self.store.update(job_id, only_from=(QUEUED, RUNNING), state=FAILED, failure="INTERNAL", error=reason)
            except Exception:  # noqa: BLE001 - still failing: try again later; a restart recovers it too
                return
            self._unrecorded.pop(job_id, None)

    def _one(self, job_id: str) -> None:
        self._cancel[job_id] = threading.Event()  # before RUNNING, so cancel() always finds one
        try:
            if not self.store.update(job_id, only_from=(QUEUED,), state=RUNNING):
                return  # cancelled while queued
            try:
                self.check_space()
                self._run(job_id)
            except (BusyError, WorkerProtocolError) as exc:
                self._fail(job_id, "INTERNAL", str(exc))
            except Exception:
                log.exception("job %s failed in the runner", job_id)
                self._fail(job_id, "INTERNAL", INTERNAL)
        finally:
            self._cancel.pop(job_id, None)
            self._cleanup(job_id)

    def _run(self, job_id: str) -> None:
        job = self.store.get(job_id)
        folder = self.folder(job.id)
        prepare_folder(folder, job.spec, self.upload_dir(job.id), self.sandbox)
        cancel = self._cancel[job_id]

        def stop() -> str | None:
            if not cancel.is_set():
                return None
            return "interrupted" if self._stopping.is_set() else "cancelled"

        try:
            outcome, returncode = run_build(
                folder,
                self.sandbox,
                self.timeout_s,
                stop=stop,
                progress=lambda event: self._progress(job_id, event),
                started=lambda pid: self._workers.__setitem__(job_id, pid),
            )
        finally:
            self._workers.pop(job_id, None)
        self._finish(job_id, outcome, returncode, folder.out)

    def _progress(self, job_id: str, event: ProgressEvent) -> None:
        try:
            self.store.add_event(job_id, event)
        except Exception as exc:  # noqa: BLE001 - a lost progress event must not stop the build
            log.warning("job %s: progress not recorded (%s)", job_id, exc)

    def _finish(self, job_id: str, outcome: tuple, returncode: int | None, out: Path) -> None:
        kind = outcome[0]
        if kind == "done":
            self._succeed(job_id, outcome[1], out)
        elif kind == "cancelled":
            self.store.update(job_id, state=CANCELLED, error="cancelled while running; the worker was stopped")
        elif kind == "interrupted":
            self._fail(job_id, "INTERRUPTED", INTERRUPTED)
        elif kind == "error":
            self._fail(job_id, outcome[2], outcome[1], summary=outcome[3])
        else:
            self._fail(job_id, "WORKER_CRASHED", crash_message(returncode, self.sandbox.enabled))

    def _succeed(self, job_id: str, result: dict, out: Path) -> None:
        check_tree(out)
        self.artifacts.commit(job_id, out)
        cloud = self._keep_cloud_model(job_id, out, result["cloud_file"])
        self._keep_split_tail(job_id, out, result.get("tail"))
        self.store.update(
            job_id,
            state=SUCCEEDED,
            summary=result["summary"],
            model_name=result["model_name"],
            model_version=result["model_version"],
            cloud_model=cloud,
        )
        try:
            self.on_success(self.store.get(job_id))
        except Exception:
            log.exception("job %s succeeded but its model cannot be served", job_id)

    def _fail(self, job_id: str, failure: str, error: str, summary: str = "") -> None:
        """Mark a job FAILED with its FailureKind name, the reason shown to the client and, for a gate failure,
        the table of every candidate's numbers (as the job's summary)."""
        self.store.update(job_id, state=FAILED, failure=failure, error=error, summary=summary)

    def _keep_cloud_model(self, job_id: str, out: Path, cloud_file: str) -> str:
        source = out / cloud_file
        if not cloud_file or source.is_symlink() or not source.is_file():
            return ""
        dest = self.work_root / "models" / job_id / "model.onnx"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        return str(dest)

    def _keep_split_tail(self, job_id: str, out: Path, tail: dict | None) -> None:
        """Keep a split build's tail beside its cloud model (``tail.onnx`` + ``tail.json`` with its served name)."""
        if not tail or not tail["file"] or (out / tail["file"]).is_symlink() or not (out / tail["file"]).is_file():
            return
        dest = self.work_root / "models" / job_id
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / tail["file"], dest / TAIL_MODEL)
        (dest / TAIL_INFO).write_text(
            json.dumps({"model_name": tail["model_name"], "model_version": tail["model_version"]})
        )

    def _cleanup(self, job_id: str) -> None:
        shutil.rmtree(self.upload_dir(job_id), ignore_errors=True)
        shutil.rmtree(self.folder(job_id).root, ignore_errors=True)
