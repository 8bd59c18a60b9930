"""The README's commands resolve: every prerequisite the Makefile names exists (``make -n`` plans without running)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("target", ["demo", "test", "test-fast", "lint"])
def test_make_targets_have_every_prerequisite(target):
    make = shutil.which("make")
    assert make, "make is needed to run the README's commands"
    done = subprocess.run([make, "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "No rule to make target" not in done.stderr, done.stderr[-800:]
