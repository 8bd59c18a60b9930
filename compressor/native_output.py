"""Send what converters print from C++ and Python to a log file instead of the user's terminal.

While output is captured, :func:`terminal` still reaches the user's stderr, so
progress bars keep drawing.
"""

from __future__ import annotations

import contextlib
import io
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
            sys.stdout, sys.stderr = saved_streams
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            os.close(saved_fds[0])
            os.close(saved_fds[1])
            if outer_terminal is None and _terminal is not saved_streams[1]:
                _terminal.close()
            _terminal = outer_terminal
