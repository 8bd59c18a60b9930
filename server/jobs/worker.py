"""The body of one job, run in its own spawned process: build, and report back over a pipe.

Messages sent to the parent: ("progress", stage, done, total, message), then exactly one of
("done", {summary, model_name, model_version, cloud_file, tail}) or ("error", message, failure kind, summary);
a gate failure's summary is its table of every candidate's numbers, as a local build prints it.  A crash
(segfault, OOM kill) sends nothing; the runner then fails the job from the exit code.
"""

from __future__ import annotations

import json
import signal
import traceback
from pathlib import Path

from compressor.bundle.report import summary_text
from compressor.errors import EdgeForgeError, GateFailedError
from compressor.progress import ProgressEvent
from server.errors import failure_kind


def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker if the server process dies (no orphaned builds after a crash)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run(spec_dict: dict, model: str, data: str | None, out: str, conn) -> None:
    """Entry point of the worker process."""
    _die_with_parent()
    try:
        result = _build(spec_dict, Path(model), Path(data) if data else None, Path(out), conn)
        conn.send(("done", result))
    except GateFailedError as exc:
        conn.send(("error", str(exc), failure_kind(exc), summary_text(exc.report) if exc.report else ""))
    except EdgeForgeError as exc:
        conn.send(("error", str(exc), failure_kind(exc), ""))
    except BaseException as exc:  # noqa: BLE001 - a job's failure must reach the parent as a message
        conn.send(
            (
                "error",
                f"internal error in the build: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}",
                failure_kind(exc),
                "",
            )
        )
    finally:
        conn.close()


def _build(spec_dict: dict, model: Path, data: Path | None, out: Path, conn) -> dict:
    from sdkgen.build import build
    from server.jobs.spec import from_dict, from_proto

    request = from_proto(from_dict(spec_dict))

    def progress(event: ProgressEvent) -> None:
        conn.send(("progress", event.stage, event.done, event.total, event.message))

    result = build(
        model,
        request.profile,
        out,
        request.sdk,
        data=data,
        options=request.options,
        progress=progress,
        split=request.split,
    )
    cloud = result.manifest.get("cloud") or {}
    summary = (out / "summary.txt").read_text() if (out / "summary.txt").exists() else json.dumps(result.report)[:2000]
    tail = (result.manifest.get("split") or {}).get("tail") or {}
    return {
        "summary": summary,
        "model_name": cloud.get("model_name", ""),
        "model_version": cloud.get("model_version", ""),
        "cloud_file": cloud.get("file", ""),
        "tail": {k: tail[k] for k in ("model_name", "model_version", "file")} if tail else None,
    }
