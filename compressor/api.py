"""The Python API: compress a model for a named hardware profile."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compressor.data import SampleData, match_inputs, read_npz
from compressor.errors import InvalidInputError
from compressor.loaders import SourceModel, from_module, load_model
from compressor.options import CompressOptions
from compressor.outdir import atomic_output_dir
from compressor.pipeline import run_pipeline
from compressor.profiles import Profile, get_profile
from compressor.progress import Progress, ProgressSink
from compressor.report import build_report, summary_text
from compressor.report_html import write_report_html
from compressor.runtimes import quiet_native_logs
from compressor.state import BuildState

SYNTHETIC_SAMPLES = 32


@dataclass(frozen=True)
class BuildResult:
    out_dir: Path
    report: dict

    def artifact_path(self, fmt: str) -> Path:
        return self.out_dir / self.report["outputs"][fmt]


def load_source(
    model, example_inputs: tuple | None = None, data: str | Path | dict | None = None
) -> tuple[SourceModel, SampleData]:
    """Load a model (path or ``torch.nn.Module``) and its sample data, checked against each other."""
    arrays = read_npz(data) if isinstance(data, (str, Path)) else data
    if isinstance(model, (str, Path)):
        source = load_model(model, data_hint=arrays)
    else:
        if example_inputs is None:
            raise InvalidInputError(
                "an in-memory module needs example_inputs: a tuple of tensors, one per forward() argument"
            )
        source = from_module(model, example_inputs)
    if arrays is None:
        return source, synthetic_data(source)
    label = f"data file {data}" if isinstance(data, (str, Path)) else "sample data"
    return source, match_inputs(arrays, source.inputs, label)


def synthetic_data(source: SourceModel, count: int = SYNTHETIC_SAMPLES) -> SampleData:
    """Seeded stand-in inputs when the user gives none: the gate then compares outputs by cosine only."""
    rng = np.random.default_rng(0)
    inputs = {}
    for spec in source.inputs:
        if any(d is None for d in spec.shape[1:]):
            raise InvalidInputError(f"input {spec.describe()} has dynamic dimensions; pass sample data with --data")
        shape = (count, *spec.shape[1:])
        if np.issubdtype(np.dtype(spec.dtype), np.floating):
            inputs[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        else:
            inputs[spec.name] = np.zeros(shape, dtype=spec.dtype)
    return SampleData(inputs, synthetic=True)


def run_build(
    source: SourceModel,
    data: SampleData,
    profile: str | Profile,
    options: CompressOptions | None = None,
    progress: ProgressSink | None = None,
    workdir: Path | None = None,
    split=None,
    student=None,
) -> BuildState:
    """Convert, validate, measure and select artifacts (and plan a split for a ``SplitRequest``); files stay in ``workdir``.

    ``student``, a ``torch.nn.Module`` taking the same inputs as ``source`` and giving same-shaped outputs, is
    distilled from it into one more candidate; a mismatch raises :class:`InvalidInputError` before any work.
    """
    quiet_native_logs()
    profile = get_profile(profile) if isinstance(profile, str) else profile
    if student is not None:
        check_student(source, data, student)
    state = BuildState(
        source=source,
        profile=profile,
        options=options or CompressOptions(),
        data=data,
        workdir=workdir or Path(tempfile.mkdtemp(prefix="edgeforge-")),
        progress=Progress(progress),
        student=student,
        split_request=split,
    )
    return run_pipeline(state)


def check_student(source: SourceModel, data: SampleData, student) -> None:
    """Raise :class:`InvalidInputError` unless ``student`` runs on ``source``'s inputs and matches its output shapes."""
    import torch

    if not isinstance(student, torch.nn.Module):
        raise InvalidInputError(f"student must be a torch.nn.Module; got {type(student).__name__}")
    args = tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in data.take(0, min(len(data), 2)).inputs.values())
    with torch.no_grad():
        expected = _shapes(source.torch_module().eval()(*args))
        try:
            got = _shapes(student.eval()(*args))
        except Exception as exc:  # noqa: BLE001 - any failure here means the student does not take these inputs
            raise InvalidInputError(
                f"the student cannot run on the model's inputs ({', '.join(s.describe() for s in source.inputs)}): "
                f"{type(exc).__name__}: {str(exc)[:200]}; its forward() must take the same tensors as the teacher's"
            ) from None
    if got != expected:
        raise InvalidInputError(
            f"the student's outputs have shapes {got}, the teacher's {expected} (on 2 samples); distillation needs the "
            "student to give outputs of the same shapes as the teacher"
        )


def _shapes(result) -> list[tuple[int, ...]]:
    outputs = result if isinstance(result, (tuple, list)) else (result,)
    return [tuple(getattr(o, "shape", ())) for o in outputs]


def write_bundle(state: BuildState, dest: Path, html: bool = True) -> dict:
    """Copy candidates and the selected artifact(s) into ``dest`` and write ``report.json`` and ``summary.txt``.

    ``html`` also writes ``report.html`` (a caller that adds a manifest renders it afterwards, with the manifest).
    """
    paths: dict[int, str | None] = {}
    (dest / "candidates").mkdir(parents=True, exist_ok=True)
    for i, candidate in enumerate(state.candidates):
        if candidate.error is None:
            rel = f"candidates/{candidate.name}"
            shutil.copyfile(candidate.path, dest / rel)
            paths[i] = rel
    outputs = {}
    for fmt, index in state.selected.items():
        name = f"model.{fmt.value}"
        _link_or_copy(dest / paths[index], dest / name)
        outputs[fmt.value] = name
    log = state.workdir / "converter.log"
    if log.exists():
        shutil.copyfile(log, dest / "converter.log")
    report = build_report(state, paths, outputs)
    (dest / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (dest / "summary.txt").write_text(summary_text(report))
    if html:
        write_report_html(report, dest)
    return report


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def compress(
    model,
    profile: str | Profile,
    out: str | Path,
    *,
    data: str | Path | dict | None = None,
    example_inputs: tuple | None = None,
    options: CompressOptions | None = None,
    progress: ProgressSink | None = None,
    student=None,
) -> BuildResult:
    """Compress ``model`` (a file path or a ``torch.nn.Module`` with ``example_inputs``) for ``profile``.

    Writes ``model.tflite`` and/or ``model.onnx`` (as the profile ships), ``candidates/``,
    ``report.json`` and ``summary.txt`` into ``out``, atomically.  Raises an
    :class:`~compressor.errors.EdgeForgeError` subclass on bad input or when no
    candidate passes the accuracy gate; ``out`` is then left untouched.  A
    ``student`` module (same inputs, same output shapes) is distilled from
    ``model`` and added as the ``student-distill`` candidate.
    """
    profile = get_profile(profile) if isinstance(profile, str) else profile
    source, samples = load_source(model, example_inputs, data)
    with tempfile.TemporaryDirectory(prefix="edgeforge-") as work, atomic_output_dir(out) as staging:
        state = run_build(source, samples, profile, options, progress, Path(work), student=student)
        report = write_bundle(state, staging)
    return BuildResult(Path(out).resolve(), report)
