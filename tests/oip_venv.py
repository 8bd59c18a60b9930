"""The isolated venv (``build/oip-venv``) that holds the independent OIP server: Triton Inference Server.

Triton's own server binary (``tritonserver``, with its Python backend) ships inside PyPI's ``nvidia-pytriton``
wheel; it is installed with ``--no-deps`` (only the binary is used, not PyTriton's Python API) next to numpy and
onnxruntime, which the Python backend's ``model.py`` imports.  Nothing here touches the project's own venv.

``python tests/oip_venv.py`` creates or refreshes the venv (``.ci/run`` calls it); tests call :func:`ensure`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "build" / "oip-venv"
REQUIREMENTS = Path(__file__).with_name("oip-requirements.txt")
NODEPS = ("nvidia-pytriton==0.7.0",)  # its Python dependencies are not needed to run the bundled server
STAMP = VENV / ".edgeforge-oip"
PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def _digest() -> str:
    return hashlib.sha256((REQUIREMENTS.read_text() + "\n".join(NODEPS) + PY_VERSION).encode()).hexdigest()


def ensure() -> Path:
    """Create (or refresh, when its requirements changed) the venv; return its folder.  Raises CalledProcessError."""
    if STAMP.exists() and STAMP.read_text() == _digest():
        return VENV
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    subprocess.run([*pip, "--no-deps", *NODEPS], check=True)
    _backends()
    STAMP.write_text(_digest())
    return VENV


def tritonserver_root() -> Path:
    """The ``tritonserver`` folder inside the installed wheel (``bin/``, ``backends/``, ``python_backend_stubs/``)."""
    return next((VENV / "lib").glob("python3*/site-packages/pytriton/tritonserver"))


def backends_dir() -> Path:
    """A backend directory for Triton: the wheel's Python backend with the stub for this Python version."""
    return VENV / "triton-backends"


def _backends() -> None:
    root = tritonserver_root()
    python = backends_dir() / "python"
    python.mkdir(parents=True)
    for item in (root / "backends" / "python").iterdir():
        (python / item.name).symlink_to(item)
    (python / "triton_python_backend_stub").symlink_to(
        root / "python_backend_stubs" / PY_VERSION / "triton_python_backend_stub"
    )


def triton_env() -> dict[str, str]:
    """Environment for ``tritonserver``: the Python backend's stub runs this Python with the venv's packages."""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    return {
        **os.environ,
        # the stub's embedded Python finds its executable on PATH, hence this venv (as PyTriton does)
        "PATH": os.pathsep.join((str(VENV / "bin"), os.environ.get("PATH", ""))),
        "LD_LIBRARY_PATH": os.pathsep.join(p for p in (libdir, os.environ.get("LD_LIBRARY_PATH", "")) if p),
    }


if __name__ == "__main__":
    print(ensure())
