"""Run queued jobs in isolated worker processes: a concurrency limit, a timeout, cancellation, crash handling."""

from __future__ import annotations

import json
import logging
import multiprocessing
import queue
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from compressor.progress import ProgressEvent
from server.errors import NotReadyError
from server.jobs import worker
from server.jobs.artifacts import ArtifactStore
from server.jobs.store import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, JobRecord, JobStore

log = logging.getLogger("edgeforge.jobs")
TAIL_MODEL, TAIL_INFO = "tail.onnx", "tail.json"  # a split build's tail, kept beside the job's cloud model
INTERRUPTED = "interrupted: the server stopped while this job was running; submit it again"
_STOP = object()


class JobRunner:
    """Jobs wait in a queue; ``concurrency`` threads each drive one worker process at a time."""

    def __init__(
        self,
        store: JobStore,
        artifacts: ArtifactStore,
        work_root: Path,
        *,
        concurrency: int,
        timeout_s: float,
        on_success: Callable[[JobRecord], None],
    ) -> None:
        self.store, self.artifacts, self.work_root = store, artifacts, work_root
        self.timeout_s, self.on_success = timeout_s, on_success
        self._queue: queue.Queue = queue.Queue()
        self._cancel: dict[str, threading.Event] = {}
        self._workers: dict[str, int] = {}  # job id -> pid of its running worker process
        self._stopping = threading.Event()
        self._context = multiprocessing.get_context("spawn")
        self._threads = [
            threading.Thread(target=self._loop, name=f"job-runner-{i}", daemon=True) for i in range(concurrency)
        ]

    @property
    def uploads_root(self) -> Path:
        return self.work_root / "uploads"

    def upload_dir(self, job_id: str) -> Path:
        return self.uploads_root / job_id

    def start(self) -> None:
        """Recover from the last run (interrupted jobs fail, queued ones run again), then start the threads."""
        for job in self.store.in_state(RUNNING):
            self._fail(job.id, "INTERRUPTED", INTERRUPTED)
            self._cleanup(job.id)
        for job in self.store.in_state(QUEUED):
            self._queue.put(job.id)
        for thread in self._threads:
            thread.start()

    def submit(self, job_id: str) -> None:
        self._queue.put(job_id)

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
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=15)

    def _loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is _STOP or self._stopping.is_set():
                return
            self._cancel[job_id] = threading.Event()  # before RUNNING, so cancel() always finds one
            if not self.store.update(job_id, only_from=(QUEUED,), state=RUNNING):
                self._cancel.pop(job_id, None)
                continue  # cancelled while queued
            try:
                self._run(job_id)
            except Exception as exc:
                log.exception("job %s failed in the runner", job_id)
                self._fail(job_id, "INTERNAL", f"internal server error: {exc}")
            finally:
                self._cleanup(job_id)

    def _run(self, job_id: str) -> None:
        job = self.store.get(job_id)
        uploads = self.upload_dir(job_id)
        data = next(uploads.glob("data-*"), None)
        out = self.work_root / "builds" / job_id / "out"
        shutil.rmtree(out.parent, ignore_errors=True)
        out.parent.mkdir(parents=True)
        cancel = self._cancel.setdefault(job_id, threading.Event())
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=worker.run,
            name=f"edgeforge-job-{job_id}",
            daemon=True,
            args=(job.spec, str(next(uploads.glob("model-*"))), str(data) if data else None, str(out), send),
        )
        process.start()
        self._workers[job_id] = process.pid
        send.close()
        try:
            outcome = self._supervise(job_id, process, receive, cancel)
        finally:
            if process.is_alive():
                process.kill()
            process.join(5)
            self._cancel.pop(job_id, None)
            self._workers.pop(job_id, None)
        self._finish(job_id, outcome, process.exitcode, out)

    def _supervise(self, job_id: str, process, receive, cancel: threading.Event) -> tuple:
        deadline = time.monotonic() + self.timeout_s
        while True:
            if cancel.is_set():
                process.terminate()
                return ("interrupted",) if self._stopping.is_set() else ("cancelled",)
            if time.monotonic() > deadline:
                process.terminate()
                return (
                    "error",
                    f"timed out after {self.timeout_s:g} s (the server's per-job limit); the worker was stopped",
                    "TIMED_OUT",
                    "",
                )
            if receive.poll(0.2):
                try:
                    message = receive.recv()
                except EOFError:
                    return ("crashed",)
                if message[0] == "progress":
                    self.store.add_event(job_id, ProgressEvent(*message[1:]))
                else:
                    return message
            elif not process.is_alive() and not receive.poll(0):
                return ("crashed",)

    def _finish(self, job_id: str, outcome: tuple, exitcode: int | None, out: Path) -> None:
        kind = outcome[0]
        if kind == "done":
            result = outcome[1]
            self.artifacts.commit(job_id, out)
            cloud = self._keep_cloud_model(job_id, out, result.get("cloud_file", ""))
            self._keep_split_tail(job_id, out, result.get("tail"))
            self.store.update(
                job_id,
                state=SUCCEEDED,
                summary=result["summary"],
                model_name=result["model_name"],
                model_version=result["model_version"],
                cloud_model=cloud,
            )
            self.on_success(self.store.get(job_id))
        elif kind == "cancelled":
            self.store.update(job_id, state=CANCELLED, error="cancelled while running; the worker was stopped")
        elif kind == "interrupted":
            self._fail(job_id, "INTERRUPTED", INTERRUPTED)
        elif kind == "error":
            self._fail(job_id, outcome[2], outcome[1], summary=outcome[3])
        else:
            how = f"was killed by signal {-exitcode}" if exitcode and exitcode < 0 else f"exited with code {exitcode}"
            self._fail(
                job_id,
                "WORKER_CRASHED",
                f"the worker process {how} without a result (a converter crash or "
                "running out of memory); the server is unaffected",
            )

    def _fail(self, job_id: str, failure: str, error: str, summary: str = "") -> None:
        """Mark a job FAILED with its FailureKind name, the reason shown to the client and, for a gate failure,
        the table of every candidate's numbers (as the job's summary)."""
        self.store.update(job_id, state=FAILED, failure=failure, error=error, summary=summary)

    def _keep_cloud_model(self, job_id: str, out: Path, cloud_file: str) -> str:
        if not cloud_file or not (out / cloud_file).is_file():
            return ""
        dest = self.work_root / "models" / job_id / "model.onnx"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / cloud_file, dest)
        return str(dest)

    def _keep_split_tail(self, job_id: str, out: Path, tail: dict | None) -> None:
        """Keep a split build's tail beside its cloud model (``tail.onnx`` + ``tail.json`` with its served name)."""
        if not tail or not (out / tail["file"]).is_file():
            return
        dest = self.work_root / "models" / job_id
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / tail["file"], dest / TAIL_MODEL)
        (dest / TAIL_INFO).write_text(
            json.dumps({"model_name": tail["model_name"], "model_version": tail["model_version"]})
        )

    def _cleanup(self, job_id: str) -> None:
        shutil.rmtree(self.upload_dir(job_id), ignore_errors=True)
        shutil.rmtree(self.work_root / "builds" / job_id, ignore_errors=True)
