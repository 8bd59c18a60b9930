"""The body of one job: ``python -m server.jobs.worker --job DIR --fd N``, run inside the job sandbox.

``DIR/input/job.json`` names the spec and the uploaded files; the build writes ``DIR/work/out``.  Messages
to the server go to file descriptor ``N`` as JSON lines (see :mod:`server.jobs.messages`):
``["progress", stage, done, total, message]``, then exactly one of ``["done", {...}]`` or
``["error", message, failure kind, summary]``.  A gate failure's summary is its table of every candidate's
numbers.  The message of an unexpected error names only its type; the traceback goes to stderr, which
the server keeps in its log, never in the job.  A crash (segfault, OOM kill) sends nothing; the runner
then fails the job from the exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from pathlib import Path

JOB_FILE = "job.json"


def die_with_parent() -> None:
    """Linux: have the kernel kill this worker if its parent dies (no orphaned builds after a crash)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Channel:
    """JSON lines to the server on an inherited file descriptor."""

    def __init__(self, fd: int) -> None:
        self._out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")

    def send(self, *message) -> None:
        self._out.write(json.dumps(message, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._out.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.jobs.worker")
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args(argv)
    die_with_parent()
    channel = Channel(args.fd)
    try:
        job = json.loads((args.job / "input" / JOB_FILE).read_text())
        run(job, args.job, channel)
    finally:
        channel.close()
    return 0


def run(job: dict, root: Path, channel: Channel) -> None:
    """Build ``job`` in ``root`` and report the outcome on ``channel``."""
    from compressor.bundle.report import summary_text
    from compressor.errors import EdgeForgeError, GateFailedError
    from server.errors import failure_kind

    try:
        model = root / "input" / job["model"]
        data = root / "input" / job["data"] if job.get("data") else None
        channel.send("done", _build(job["spec"], model, data, root / "work" / "out", channel))
    except GateFailedError as exc:
        channel.send("error", str(exc), failure_kind(exc), summary_text(exc.report) if exc.report else "")
    except EdgeForgeError as exc:
        channel.send("error", str(exc), failure_kind(exc), "")
    except MemoryError:
        channel.send(
            "error",
            "the build ran out of memory (the server's per-job address-space limit); try a smaller model or data",
            "INTERNAL",
            "",
        )
    except BaseException as exc:  # noqa: BLE001 - a job's failure must reach the parent as a message
        traceback.print_exc(file=sys.stderr)
        channel.send(
            "error",
            f"internal error in the build ({type(exc).__name__}); the server's log has the details",
            failure_kind(exc),
            "",
        )


def _build(spec_dict: dict, model: Path, data: Path | None, out: Path, channel: Channel) -> dict:
    from compressor.progress import ProgressEvent
    from sdkgen.build import build
    from server.jobs.spec import from_dict, from_proto

    request = from_proto(from_dict(spec_dict))

    def progress(event: ProgressEvent) -> None:
        channel.send("progress", event.stage, event.done, event.total, event.message)

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


if __name__ == "__main__":
    sys.exit(main())
