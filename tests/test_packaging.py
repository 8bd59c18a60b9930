"""What a user installs works: committed gRPC stubs match the protos, and a wheel (``pip install .``, not editable)
carries everything ``sdkgen build`` needs (templates, protos, schemas, profiles, stubs)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_committed_stubs_are_what_the_protos_generate():
    from server import stubs

    assert stubs.stale() == [], "regenerate with: python -m server.stubs"


@pytest.mark.slow
def test_a_wheel_in_a_fresh_venv_builds_the_example(digits_files, tmp_path):
    """Build the wheel, install it without its dependencies into a fresh venv that borrows them from this one (so
    nothing is downloaded twice), and run ``sdkgen build`` from a folder outside the checkout."""
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, ROOT])
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "-q", "--no-deps", next(wheels.glob("edgeforge-*.whl"))])
    purelib = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    (purelib / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = run(
        [python, "-c", "import compressor, sdkgen; print(compressor.__file__, sdkgen.__file__)"], env=env, cwd=tmp_path
    )
    assert str(ROOT) not in where and str(purelib) in where, where
    out = tmp_path / "out"
    run(
        [
            venv / "bin" / "sdkgen",
            "build",
            digits_files / "model.pt2",
            "--profile",
            "pixel-8",
            "--data",
            digits_files / "data.npz",
            "--labels",
            digits_files / "labels.txt",
            "--platform",
            "android,ios,python",
            "--name",
            "DigitsClassifier",
            "--package",
            "com.example.digits",
            "--precision",
            "int8-dynamic",
            "--latency-repeats",
            "3",
            "--out",
            out,
        ],
        env=env,
        cwd=tmp_path,
    )
    for name in (
        "model.tflite",
        "report.json",
        "model-manifest.json",
        "cloud/model.onnx",
        "android/build.gradle.kts",
        "ios/Package.swift",
        "python/pyproject.toml",
    ):
        assert (out / name).is_file(), name


def run(args, **kwargs) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900, **kwargs)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout
