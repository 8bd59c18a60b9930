"""Open an artifact in a child process first, where a runtime that aborts on it takes only the child down.

LiteRT's C++ checks abort the whole process on some models (e.g. a full-integer transformer whose integer
attention it cannot prepare); Python never sees an exception.  :func:`runtime_refusal` loads the artifact and runs
one all-zero sample in a fresh interpreter, so that such an artifact becomes a failed candidate with a reason
instead of the end of the build.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE_SECONDS = 600
_CODE = """
import sys
import numpy as np
from compressor.runtimes import open_artifact
runner = open_artifact(sys.argv[1], sys.argv[2])
runner.run({s.name: np.zeros([1 if d is None else int(d) for d in s.shape], dtype=s.dtype) for s in runner.inputs})
"""


def runtime_refusal(path: Path, fmt: str) -> str | None:
    """None when ``path`` loads and runs one sample in its runtime in a child process; else why not."""
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CODE, str(path), fmt],
            capture_output=True,
            text=True,
            timeout=PROBE_SECONDS,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"the {fmt} runtime did not load the artifact within {PROBE_SECONDS} s"
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith(("W", "I0", "INFO"))]
    how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit code {done.returncode}"
    return f"the {fmt} runtime aborts loading or running this artifact ({how}{': ' + lines[-1][:200] if lines else ''})"
