"""What an RQ work horse of ``sdkgen worker`` runs for one job: ``run_job(job_id, timeout_s)``.

The horse takes the job in the store (:meth:`Store.claim`: a new attempt number that fences all it records),
fetches its uploads from the shared artifact store, builds it in the same sandbox as the local executor
(:func:`server.jobs.execution.run_build`), commits the artifacts under ``<job_id>/a<attempt>`` and records the
outcome only if its attempt is still the job's. It asks the kernel to kill it with its worker
(``PR_SET_PDEATHSIG``; the sandbox dies with it through bubblewrap's ``--die-with-parent``), so a SIGKILLed worker
leaves nothing running: RQ's registry notices the lost heartbeat and retries the job elsewhere. It polls the
store while building, so a cancellation recorded by the server stops the build within a second even if the
RQ stop-job command is lost.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from functools import cache
from pathlib import Path

from compressor.progress import ProgressEvent
from server.config import MiB, WorkerConfig
from server.errors import BusyError, WorkerProtocolError
from server.jobs.artifacts import ArtifactStore, check_tree
from server.jobs.execution import CLOUD_MODEL, crash_message, prepare_folder, run_build, served_files
from server.jobs.sandbox import JobFolder, Sandbox
from server.jobs.store import FAILED, QUEUED, RUNNING, SUCCEEDED, Store
from server.jobs.stores import open_store
from server.jobs.worker import die_with_parent

log = logging.getLogger("edgeforge.worker")
ENV = "EDGEFORGE_WORKER"  # the worker's settings (WorkerConfig as JSON), inherited by its work horses
POLL_S = 1.0


class _Context:
    """This process's worker settings, stores and sandbox (from :data:`ENV`)."""

    def __init__(self) -> None:
        self.config = WorkerConfig.model_validate_json(os.environ[ENV])
        self.store: Store = open_store(self.config.store_url, self.config.work_dir / "jobs.sqlite")
        self.artifacts = ArtifactStore(self.config.artifacts_url, clean_stale=False)
        self.sandbox = Sandbox(self.config.sandbox, hidden=(self.config.work_dir, *self.config.secret_paths))


@cache
def context() -> _Context:
    return _Context()


def run_job(job_id: str, timeout_s: float) -> dict:
    """Build one job (see the module docstring); a small JSON result for RQ."""
    die_with_parent()
    ctx = context()
    attempt = ctx.store.claim(job_id, ctx.config.name)
    if attempt is None:
        return {"job": job_id, "state": "skipped: ended before this worker took it"}
    if attempt > 1:
        ctx.store.add_event(
            job_id,
            ProgressEvent("retry", attempt - 1, attempt - 1, f"attempt {attempt} on {ctx.config.name}: the worker "
                          "of the previous attempt was lost; building again from the start"),
        )  # fmt: skip
    root = ctx.config.work_dir / "builds" / job_id
    folder, uploads = JobFolder(root / "job"), root / "uploads"
    try:
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        _check_space(ctx)
        ctx.artifacts.fetch_upload(job_id, uploads)
        prepare_folder(folder, ctx.store.get(job_id).spec, uploads, ctx.sandbox)
        outcome, returncode = run_build(
            folder,
            ctx.sandbox,
            timeout_s,
            stop=_stopper(ctx.store, job_id, attempt),
            progress=lambda event: _progress(ctx.store, job_id, event),
        )
        state = _record(ctx, job_id, attempt, outcome, returncode, folder.out)
    except (BusyError, WorkerProtocolError) as exc:
        state = _fail(ctx, job_id, attempt, "INTERNAL", str(exc))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"job": job_id, "attempt": attempt, "state": state}


def _check_space(ctx: _Context) -> None:
    free = shutil.disk_usage(ctx.config.work_dir).free
    if free < ctx.config.min_free_disk_mb * MiB:
        raise BusyError(f"worker {ctx.config.name} is short of disk space ({free // MiB} MiB free)")


def _stopper(store: Store, job_id: str, attempt: int):
    """``stop()`` for run_build: "cancelled" once the job is no longer this attempt's running job."""
    last = [0.0]

    def stop() -> str | None:
        if time.monotonic() - last[0] < POLL_S:
            return None
        last[0] = time.monotonic()
        try:
            job = store.get(job_id)
        except Exception as exc:  # noqa: BLE001 - a store hiccup must not stop the build
            log.warning("job %s: cannot read its state (%s)", job_id, exc)
            return None
        return None if job.state == RUNNING and job.attempt == attempt else "cancelled"

    return stop


def _progress(store: Store, job_id: str, event: ProgressEvent) -> None:
    try:
        store.add_event(job_id, event)
    except Exception as exc:  # noqa: BLE001 - a lost progress event must not stop the build
        log.warning("job %s: progress not recorded (%s)", job_id, exc)


def _record(ctx: _Context, job_id: str, attempt: int, outcome: tuple, returncode: int | None, out: Path) -> str:
    kind = outcome[0]
    if kind == "done":
        return _succeed(ctx, job_id, attempt, outcome[1], out)
    if kind == "cancelled":
        return "cancelled (or taken over by another attempt)"
    if kind == "error":
        return _fail(ctx, job_id, attempt, outcome[2], outcome[1], outcome[3])
    return _fail(ctx, job_id, attempt, "WORKER_CRASHED", crash_message(returncode, ctx.sandbox.enabled))


def _succeed(ctx: _Context, job_id: str, attempt: int, result: dict, out: Path) -> str:
    check_tree(out)
    key = f"{job_id}/a{attempt}"
    served = served_files(out, result)
    ctx.artifacts.commit(key, out, served)
    won = ctx.store.update(
        job_id,
        only_from=(RUNNING,),
        fence=attempt,
        state=SUCCEEDED,
        summary=result["summary"],
        model_name=result["model_name"],
        model_version=result["model_version"],
        cloud_model=CLOUD_MODEL if CLOUD_MODEL in served else "",
    )
    if not won:  # cancelled meanwhile, or another attempt took the job: its outcome stands, not this one
        ctx.artifacts.discard(key)
        return "discarded: the job was cancelled or taken over while this attempt built it"
    ctx.artifacts.drop_upload(job_id)
    return SUCCEEDED


def _fail(ctx: _Context, job_id: str, attempt: int, failure: str, error: str, summary: str = "") -> str:
    if ctx.store.update(
        job_id, only_from=(RUNNING,), fence=attempt, state=FAILED, failure=failure, error=error, summary=summary
    ):
        ctx.artifacts.drop_upload(job_id)
    return FAILED


def on_failure(job, connection, exc_type, value, traceback) -> None:
    """RQ's failure callback (in the horse for an exception, in a worker's registry cleanup for a job whose worker
    was lost): nothing while RQ will retry it, else the job FAILED in the store, with why."""
    if job.retries_left:
        log.warning("job %s: attempt failed (%s); RQ runs it again", job.id, getattr(exc_type, "__name__", exc_type))
        return
    name = getattr(exc_type, "__name__", str(exc_type))
    if name == "AbandonedJobError":
        failure, error = "WORKER_CRASHED", "the workers building this job were lost (killed or their machine stopped)"
    elif name == "JobTimeoutException":
        failure, error = "TIMED_OUT", "timed out in the queue's own limit; the worker was stopped"
    else:
        failure, error = "INTERNAL", f"internal error in the worker ({name}); the worker's log has the details"
    context().store.update(job.id, only_from=(QUEUED, RUNNING), state=FAILED, failure=failure, error=error)
