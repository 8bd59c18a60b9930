"""A process that runs many builds (a notebook, a test session, the Python API in a service) keeps no file open from
one build to the next: ai-edge-quantizer's flatbuffer reader, given a path, maps the file, and the mapping and its
descriptor outlived the build that had deleted the file (the full test session passed FD_SETSIZE)."""

from __future__ import annotations

import contextlib
import gc
import os
import sys

import pytest

from compressor import CompressOptions, compress

pytestmark = [
    pytest.mark.slow,  # three builds
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/fd"),
]


def _open_files() -> dict[str, str]:
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
    return found


def test_builds_leave_no_descriptor_open(digits_files, tmp_path):
    options = CompressOptions(latency_repeats=2, latency_warmup=1)  # every precision: each quantizer path runs

    def build(name: str) -> None:
        compress(
            digits_files / "model.pt2", "pixel-8", tmp_path / name, data=digits_files / "data.npz", options=options
        )
        gc.collect()

    build("first")  # one-time opens (fonts, libraries) happen here
    before = _open_files()
    build("second")
    build("third")
    after = _open_files()
    leaked = sorted(path for path in after.values() if path not in before.values())
    assert len(after) <= len(before) and not leaked, leaked
