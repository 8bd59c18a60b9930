"""Send what converters print from C++ and Python to a log file instead of the user's terminal.

While output is captured, :func:`terminal` still reaches the user's stderr, so
progress bars keep drawing.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

_terminal: TextIO | None = None


def terminal() -> TextIO:
    """The user's stderr, also while converter output is being captured."""
    return _terminal or sys.stderr


def _uses_fd(stream, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, io.UnsupportedOperation):
        return False


@contextlib.contextmanager
def captured(log_path: Path) -> Iterator[None]:
    """Redirect file descriptors 1 and 2, and sys.stdout/err, to ``log_path`` for the duration."""
    global _terminal
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = os.dup(1), os.dup(2)
    saved_streams = sys.stdout, sys.stderr
    outer_terminal = _terminal
    if _terminal is None:
        _terminal = os.fdopen(os.dup(saved_fds[1]), "w", buffering=1) if _uses_fd(sys.stderr, 2) else sys.stderr
    with open(log_path, "ab") as log, open(log_path, "a", buffering=1) as text:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = text
        try:
            yield
        finally:
            text.flush()
            _rebind_handlers(text)
            sys.stdout, sys.stderr = saved_streams
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            os.close(saved_fds[0])
            os.close(saved_fds[1])
            if outer_terminal is None and _terminal is not saved_streams[1]:
                _terminal.close()
            _terminal = outer_terminal


class _CurrentStderr:
    """A stream that writes wherever ``sys.stderr`` points when it writes."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _rebind_handlers(stream: TextIO) -> None:
    """Logging handlers a library made while output was captured hold the log file's stream, which is about to
    close; each then gets :class:`_CurrentStderr` instead (the log file during a capture, the terminal outside one),
    rather than failing with a "Logging error" traceback at its next message."""
    loggers = [
        logging.getLogger(),
        *(v for v in logging.root.manager.loggerDict.values() if isinstance(v, logging.Logger)),
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is stream:
                handler.setStream(_CurrentStderr())
