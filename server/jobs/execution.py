"""One job's build in the sandbox, the same for every executor: lay out its folder, start
``python -m server.jobs.worker`` through :class:`Sandbox`, read its JSON-line messages
(:mod:`server.jobs.messages`) and turn the end into an outcome tuple:

``("done", result)``, ``("error", message, failure kind, summary)``, ``("cancelled",)``, ``("interrupted",)``
or ``("crashed",)``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from compressor.progress import ProgressEvent
from server.errors import WorkerProtocolError
from server.jobs import messages
from server.jobs.sandbox import JobFolder, Sandbox
from server.jobs.worker import JOB_FILE

log = logging.getLogger("edgeforge.jobs")
LOG_TAIL_BYTES = 4000
TAIL_MODEL, TAIL_INFO, CLOUD_MODEL = "tail.onnx", "tail.json", "model.onnx"  # a job's served files


def prepare_folder(folder: JobFolder, spec: dict, uploads: Path, sandbox: Sandbox, *, move: bool = True) -> None:
    """A fresh job folder holding the uploads (moved, or copied) as ``input/`` with ``input/job.json``, readable by
    the sandbox uid."""
    shutil.rmtree(folder.root, ignore_errors=True)
    folder.root.mkdir(parents=True)
    if move:
        os.replace(uploads, folder.input)
    else:
        shutil.copytree(uploads, folder.input)
    model = next(folder.input.glob("model-*"))
    data = next(folder.input.glob("data-*"), None)
    description = {"spec": spec, "model": model.name, "data": data.name if data else None}
    (folder.input / JOB_FILE).write_text(json.dumps(description))
    folder.input.chmod(0o755)
    for path in folder.input.iterdir():
        path.chmod(0o644)
    sandbox.prepare(folder)


def run_build(
    folder: JobFolder,
    sandbox: Sandbox,
    timeout_s: float,
    *,
    stop: Callable[[], str | None],
    progress: Callable[[ProgressEvent], None],
    started: Callable[[int], None] = lambda pid: None,
) -> tuple[tuple, int | None]:
    """Run the worker of a prepared ``folder``; (outcome, exit code). ``stop()`` is asked every poll: a reason
    (``"cancelled"`` or ``"interrupted"``) kills the worker and becomes the outcome."""
    receive, send = os.pipe()
    argv = [sys.executable, "-m", "server.jobs.worker", "--job", sandbox.worker_path(folder, folder.root)]
    command = sandbox.command(folder, [*argv, "--fd", str(send)])
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")} if sandbox.enabled else sandbox.environment()
    with open(folder.log, "ab") as worker_log:
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=worker_log,
                stderr=worker_log,
                pass_fds=(send,),
                env=env,
                start_new_session=True,
            )
        finally:
            os.close(send)
    started(process.pid)
    try:
        outcome = _supervise(process, messages.LineReader(receive), timeout_s, stop, progress, folder.root.name)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        os.close(receive)
    if outcome[0] != "done":
        log_tail(folder)
    return outcome, process.returncode


def _supervise(process, reader: messages.LineReader, timeout_s: float, stop, progress, job_id: str) -> tuple:
    deadline, events = time.monotonic() + timeout_s, 0
    while True:
        reason = stop()
        if reason:
            process.kill()
            return (reason,)
        if time.monotonic() > deadline:
            process.kill()
            return (
                "error",
                f"timed out after {timeout_s:g} s (the server's per-job limit); the worker was stopped",
                "TIMED_OUT",
                "",
            )
        try:
            for line in reader.poll(0.2):
                message = messages.parse(line)
                if message[0] != "progress":
                    return message
                events += 1
                if events <= messages.MAX_PROGRESS_EVENTS:
                    progress(ProgressEvent(*message[1:]))
        except WorkerProtocolError as exc:
            process.kill()
            log.warning("job %s: %s", job_id, exc)
            return ("error", f"{exc}; the job was stopped", "INTERNAL", "")
        if reader.closed and process.poll() is not None:
            return ("crashed",)


def crash_message(returncode: int | None, sandboxed: bool) -> str:
    """Why a worker that ended without a result failed, from its exit code."""
    signal_number = -returncode if returncode and returncode < 0 else 0
    if not signal_number and sandboxed and returncode and returncode > 128:
        signal_number = returncode - 128  # bubblewrap reports a child killed by signal N as 128 + N
    how = f"was killed by signal {signal_number}" if signal_number else f"exited with code {returncode}"
    return (
        f"the worker process {how} without a result (a converter crash, running out of memory or "
        "past a sandbox limit); the server is unaffected"
    )


def served_files(out: Path, result: dict) -> dict[str, Path]:
    """The files the inference side serves from a finished build: its cloud model and a split build's tail
    (plain files inside ``out`` only), by the name they are kept under."""
    files: dict[str, Path] = {}
    cloud = result.get("cloud_file") or ""
    if cloud and not (out / cloud).is_symlink() and (out / cloud).is_file():
        files[CLOUD_MODEL] = out / cloud
    tail = result.get("tail") or {}
    if files and tail.get("file") and not (out / tail["file"]).is_symlink() and (out / tail["file"]).is_file():
        files[TAIL_MODEL] = out / tail["file"]
        info = out.parent / f".{TAIL_INFO}"
        info.write_text(json.dumps({"model_name": tail["model_name"], "model_version": tail["model_version"]}))
        files[TAIL_INFO] = info
    return files


def log_tail(folder: JobFolder) -> None:
    """The end of a failed worker's output (tracebacks, converter logs) goes to the server log only."""
    try:
        with open(folder.log, "rb") as f:
            f.seek(max(0, folder.log.stat().st_size - LOG_TAIL_BYTES))
            tail = f.read().decode("utf-8", "replace").strip()
    except OSError:
        return
    if tail:
        log.warning("job %s: worker output (last %d bytes):\n%s", folder.root.name, LOG_TAIL_BYTES, tail)
