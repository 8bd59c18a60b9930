"""Output directories that appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from compressor.errors import InvalidInputError

MARKER = "report.json"


@contextlib.contextmanager
def atomic_output_dir(out: str | Path) -> Iterator[Path]:
    """Yield an empty staging directory beside ``out``; on success it replaces ``out`` in one rename.

    On any failure the staging directory is removed and ``out`` is left as it was.
    An existing non-empty ``out`` is replaced only when it holds an earlier EdgeForge output.
    """
    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise InvalidInputError(
            f"output directory {out} exists and does not hold an EdgeForge build; choose a new or empty directory "
            "so nothing of yours is overwritten"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        retired = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(out, retired)
        os.rename(staging, out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, out)
