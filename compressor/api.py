"""The Python API: compress a model for a named hardware profile.

:func:`compress` is the whole job (load, check, run the pipeline, write the bundle atomically); :func:`load_source`
and :func:`run_build` are its steps, for callers that keep the results in memory (the benches, the tests).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compressor.bundle.report import build_report
from compressor.bundle.writer import write_bundle as _write_bundle
from compressor.checks import check_request
from compressor.data import SampleData, match_inputs, read_npz
from compressor.errors import GateFailedError, InvalidInputError
from compressor.holdout import holdout, overlap, select
from compressor.options import CompressOptions
from compressor.outdir import atomic_output_dir
from compressor.pipeline import run_pipeline
from compressor.profiles import Profile, get_profile
from compressor.progress import Progress, ProgressSink
from compressor.runtimes import quiet_native_logs
from compressor.sources import Source, from_module, load_model
from compressor.state import BuildData, BuildInputs, BuildResults, Candidate

SYNTHETIC_SAMPLES = 32


@dataclass(frozen=True)
class BuildResult:
    out_dir: Path
    report: dict

    def artifact_path(self, fmt: str) -> Path:
        return self.out_dir / self.report["outputs"][fmt]


class Build:
    """One finished pipeline run: its frozen ``inputs`` and its ``results``.

    When :func:`run_build` made the work folder itself, the folder lives as long as this object (or until
    :meth:`close`, or the end of a ``with`` block).
    """

    def __init__(self, inputs: BuildInputs, results: BuildResults, owned_workdir: Path | None = None) -> None:
        self.inputs, self.results = inputs, results
        self._cleanup = weakref.finalize(self, shutil.rmtree, owned_workdir, True) if owned_workdir else None

    @property
    def candidates(self) -> list[Candidate]:
        return self.results.candidates

    @property
    def macs(self) -> int | None:
        return self.results.macs

    def sample(self) -> dict[str, np.ndarray]:
        return self.inputs.sample()

    def close(self) -> None:
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> Build:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def load_source(
    model, example_inputs: tuple | None = None, data: str | Path | dict | None = None
) -> tuple[Source, SampleData]:
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
        samples = synthetic_data(source)
        source.use_samples(samples.inputs)
        return source, samples
    label = f"data file {data}" if isinstance(data, (str, Path)) else "sample data"
    samples = match_inputs(arrays, source.inputs, label)
    source.use_samples(samples.inputs)
    return source, samples


def synthetic_data(source: Source, count: int = SYNTHETIC_SAMPLES) -> SampleData:
    """Seeded stand-in inputs when the user gives none: the gate then compares outputs by cosine only."""
    rng = np.random.default_rng(0)
    inputs = {}
    for spec in source.inputs:
        if any(d is None for d in spec.shape[1:]):
            raise InvalidInputError(f"input {spec.describe()} has dynamic dimensions; pass sample data with --data")
        shape = (count, *(int(d) for d in spec.shape[1:] if d is not None))
        if np.issubdtype(np.dtype(spec.dtype), np.floating):
            inputs[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        else:
            inputs[spec.name] = np.zeros(shape, dtype=spec.dtype)
    return SampleData(inputs, synthetic=True)


def plan_data(source: Source, data: SampleData, options: CompressOptions) -> BuildData:
    """The samples for each use, so that nothing a candidate was calibrated or fine-tuned on validates it.

    Validation: the ``val_data`` file, else a held-out ``validation_fraction`` of ``data`` (seeded with
    ``split_seed``, stratified by label).  Fitting (the rest of ``data``, or the ``train_data`` file when given
    and no validation file is): training is all of it, calibration the first ``calibration_samples`` of it (it is
    shuffled).  Given both files, ``data`` fits and the file validates.  Sizes, sources and any overlap the user's
    own files have go to the report.
    """

    def read(path: Path, what: str) -> SampleData:
        return match_inputs(read_npz(path), source.inputs, f"{what} {path}")

    training = read(options.train_data, "train data") if options.train_data is not None else None
    if options.val_data is not None:
        validation, fit, origin = read(options.val_data, "validation data"), data, "--data"
        held = str(options.val_data)
    elif training is not None:
        validation, fit, origin, held = data, training, str(options.train_data), "all of --data"
    elif len(data) < 2:
        raise InvalidInputError(
            f"--data holds {len(data)} sample: at least 2 are needed to validate on samples the candidates were not "
            "calibrated on; send more samples, or a separate --val-data file"
        )
    else:
        fit_rows, held_rows = holdout(data, options.validation_fraction, options.split_seed)
        validation, fit = select(data, held_rows), select(data, fit_rows)
        stratified = " stratified by label" if data.labels is not None else ""
        origin = f"--data less the validation part ({len(fit_rows)} of {len(data)})"
        held = f"{options.validation_fraction:.0%} of --data held out (seed {options.split_seed}{stratified})"
    if training is None:
        training = fit
    calibration = fit.take(0, min(len(fit), options.calibration_samples))
    split = {
        "validation": {"samples": len(validation), "from": held},
        "calibration": {"samples": len(calibration), "from": f"first {len(calibration)} of {origin}"},
        "training": {
            "samples": len(training),
            "from": str(options.train_data) if options.train_data else origin,
        },
        "overlap_with_validation": {
            "calibration": overlap(calibration, validation),
            "training": overlap(training, validation),
        },
    }
    return BuildData(validation, calibration, training, split)


def run_build(
    source: Source,
    data: SampleData,
    profile: str | Profile,
    options: CompressOptions | None = None,
    progress: ProgressSink | None = None,
    workdir: Path | None = None,
    split=None,
    student=None,
) -> Build:
    """Convert, validate, measure and select artifacts (and plan a split for a ``SplitRequest``).

    Files stay in ``workdir`` (default: a temporary folder removed with the returned :class:`Build`).
    ``student``, a ``torch.nn.Module`` taking the same inputs as ``source`` and giving same-shaped outputs, is
    distilled from it into one more candidate.  Options the profile or the model cannot honour raise
    :class:`InvalidInputError` / :class:`TechniqueNotApplicableError` before any work.
    """
    quiet_native_logs()
    profile = get_profile(profile) if isinstance(profile, str) else profile
    options = options or CompressOptions()
    check_request(source, data, profile, options, split=split, student=student)
    owned = None if workdir is not None else Path(tempfile.mkdtemp(prefix="edgeforge-"))
    inputs = BuildInputs(
        source,
        profile,
        options,
        plan_data(source, data, options),
        workdir or owned or Path(),
        Progress(progress),
        student=student,
        split_request=split,
    )
    build = Build(inputs, BuildResults(), owned)
    try:
        build.results = run_pipeline(inputs)
    except GateFailedError as exc:
        results = exc.results if isinstance(exc.results, BuildResults) else BuildResults()
        raise GateFailedError(str(exc), build_report(inputs, results, {}, {})) from None
    return build


def write_bundle(build: Build, dest: Path, html: bool = True) -> dict:
    """Copy candidates and the selected artifact(s) into ``dest`` and write ``report.json``, ``summary.txt`` and
    (with ``html``) ``report.html``."""
    return _write_bundle(build.inputs, build.results, dest, html)


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
        build = run_build(source, samples, profile, options, progress, Path(work), student=student)
        report = write_bundle(build, staging)
    return BuildResult(Path(out).resolve(), report)
