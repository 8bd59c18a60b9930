"""Worker -> server messages: JSON lines, read with bounded buffers and checked field by field.

The worker runs untrusted models, so the server treats whatever arrives as hostile: a line longer than
:data:`MAX_LINE` ends the job, strings are cut to their limits, numbers must be numbers, and file names in
a result must be plain relative paths.  Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import re
import select
import time

from server.errors import WorkerProtocolError

MAX_LINE = 1 << 20
MAX_MESSAGE_CHARS = 2000
MAX_SUMMARY_CHARS = 64 << 10
MAX_PROGRESS_EVENTS = 10_000  # per job; a worker sending more has the rest dropped, not stored
FAILURE_KINDS = ("GATE_FAILED", "INVALID_INPUT", "BUILD_ERROR", "INTERNAL")
_RELATIVE = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9._/-]{1,255}$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9._-]{0,128}$")


class LineReader:
    """Whole lines from a pipe, each at most :data:`MAX_LINE` bytes; ``poll`` waits up to ``timeout`` s."""

    def __init__(self, fd: int) -> None:
        self.fd, self._buffer, self.closed = fd, b"", False

    def poll(self, timeout: float) -> list[bytes]:
        lines = self._split()
        if lines:
            return lines
        if self.closed:  # the worker closed its end; wait as a poll would, not in a busy loop
            time.sleep(timeout)
            return []
        poller = select.poll()  # not select.select: a busy server's descriptors pass FD_SETSIZE (1024)
        poller.register(self.fd, select.POLLIN)
        if poller.poll(timeout * 1000):
            block = os.read(self.fd, 1 << 16)
            if not block:
                self.closed = True
            self._buffer += block
        return self._split()

    def _split(self) -> list[bytes]:
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > MAX_LINE or any(len(line) > MAX_LINE for line in lines):
            raise WorkerProtocolError(f"the worker sent a message longer than {MAX_LINE} bytes")
        return lines


def parse(line: bytes) -> tuple:
    """One checked message: ("progress", stage, done, total, message) | ("done", result) | ("error", ...)."""
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise WorkerProtocolError("the worker sent a line that is not JSON") from None
    if not isinstance(message, list) or not message or message[0] not in ("progress", "done", "error"):
        raise WorkerProtocolError("the worker sent a message of no known kind")
    kind = message[0]
    if kind == "progress" and len(message) == 5:
        return ("progress", _text(message[1], 100), _count(message[2]), _count(message[3]), _text(message[4]))
    if kind == "error" and len(message) == 4:
        failure = message[2] if message[2] in FAILURE_KINDS else "INTERNAL"
        return ("error", _text(message[1]), failure, _text(message[3], MAX_SUMMARY_CHARS))
    if kind == "done" and len(message) == 2 and isinstance(message[1], dict):
        return ("done", _result(message[1]))
    raise WorkerProtocolError(f"the worker sent a malformed {kind!r} message")


def _text(value, limit: int = MAX_MESSAGE_CHARS) -> str:
    if not isinstance(value, str):
        raise WorkerProtocolError("the worker sent a non-text field")
    return value[:limit]


def _count(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 62:
        raise WorkerProtocolError("the worker sent a progress count that is not a small non-negative integer")
    return value


def relative_file(value) -> str:
    """A file name inside the build output ('' allowed): no absolute paths, no '..', no odd characters."""
    if value in ("", None):
        return ""
    if not isinstance(value, str) or not _RELATIVE.match(value):
        raise WorkerProtocolError(f"the worker named an output file {str(value)[:80]!r} outside its folder")
    return value


def _name(value) -> str:
    if not isinstance(value, str) or not _MODEL_NAME.match(value):
        raise WorkerProtocolError("the worker sent a model name or version with characters a name cannot hold")
    return value


def _result(result: dict) -> dict:
    tail = result.get("tail")
    if tail is not None:
        if not isinstance(tail, dict):
            raise WorkerProtocolError("the worker sent a malformed split tail")
        tail = {
            "model_name": _name(tail.get("model_name", "")),
            "model_version": _name(tail.get("model_version", "")),
            "file": relative_file(tail.get("file", "")),
        }
    return {
        "summary": _text(result.get("summary", ""), MAX_SUMMARY_CHARS),
        "model_name": _name(result.get("model_name", "")),
        "model_version": _name(result.get("model_version", "")),
        "cloud_file": relative_file(result.get("cloud_file", "")),
        "tail": tail,
    }
