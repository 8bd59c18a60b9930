"""Build SDKs: compress a model, write its bundle (report, manifest, cloud and split models), render one SDK per
platform.

:func:`build` is the reusable entry point (the CLI's ``sdkgen build`` and the server's job worker call it).
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compressor.api import load_source, run_build, write_bundle
from compressor.bundle.manifest import MANIFEST_FILE, SCHEMA_PATH, check_labels
from compressor.bundle.writer import write_cloud_model, write_html_or_note, write_manifest_for
from compressor.errors import InvalidInputError
from compressor.options import CompressOptions
from compressor.outdir import atomic_output_dir
from compressor.profiles import Format, Profile, get_profile
from compressor.progress import ProgressSink
from compressor.splitting.request import SplitRequest
from sdkgen.platforms import platforms
from sdkgen.render import PROTO, context_for, render_platform
from sdkgen.spec import SdkSpec


@dataclass(frozen=True)
class SdkBuildResult:
    """Where the build went and what it wrote: ``report`` and ``manifest`` as dicts, SDK dirs by platform."""

    out_dir: Path
    report: dict
    manifest: dict
    sdk_dirs: dict[str, Path]


def build(
    model,
    profile: str | Profile,
    out: str | Path,
    spec: SdkSpec,
    *,
    data: str | Path | dict | None = None,
    example_inputs: tuple | None = None,
    options: CompressOptions | None = None,
    progress: ProgressSink | None = None,
    split: SplitRequest | None = None,
) -> SdkBuildResult:
    """Compress ``model`` for ``profile`` and generate the SDKs named in ``spec.platforms`` into ``out``.

    ``out`` receives, atomically: the compressor bundle (``model.<fmt>``, ``candidates/``, ``report.json``,
    ``summary.txt``), ``model-manifest.json``, ``cloud/model.onnx`` (the fp32 model for the inference
    server) and one directory per platform.  Names, platforms, labels and formats are checked before
    any conversion runs.  Modes ``auto`` and ``split`` run the split planner (network figures and objective from
    ``split``, default the profile's) and, when a cut ships, add ``split/head.<fmt>`` and ``split/tail.onnx``.
    Raises :class:`~compressor.errors.EdgeForgeError` subclasses; ``out`` is then untouched.
    """
    profile = get_profile(profile) if isinstance(profile, str) else profile
    options = options_for_task(options or CompressOptions(), spec.resolved_task)
    edge_format = _edge_format(profile, spec)
    source, samples = load_source(model, example_inputs, data)
    _check_labels_early(source, samples, spec)
    with tempfile.TemporaryDirectory(prefix="edgeforge-sdk-") as work, atomic_output_dir(out) as staging:
        request = _split_request(spec, split, edge_format)
        built = run_build(source, samples, profile, options, progress, Path(work), split=request)
        report = write_bundle(built, staging, html=False)
        if edge_format not in report["outputs"]:
            raise InvalidInputError(
                f"the SDKs for {', '.join(spec.platforms)} load {edge_format} models, and no {edge_format} artifact "
                f"could be shipped: {report['unshipped'].get(edge_format, '')}"
            )
        write_cloud_model(built.inputs, built.results, staging)
        manifest = write_manifest_for(spec, built.inputs, built.results, report, edge_format, staging)
        ctx = context_for(spec, manifest)
        assets = {
            "model": staging / manifest["model"]["file"],
            "manifest": staging / MANIFEST_FILE,
            "schema": SCHEMA_PATH,
            "proto": PROTO,
        }
        if manifest["split"]:
            assets["head"] = staging / manifest["split"]["head"]["file"]
        for platform in spec.platforms:
            render_platform(platform, ctx, assets, staging / platform)
        write_html_or_note(report, staging, manifest)
    out = Path(out).resolve()
    return SdkBuildResult(out, report, manifest, {p: out / p for p in spec.platforms})


def _split_request(spec: SdkSpec, split: SplitRequest | None, edge_format: str) -> SplitRequest | None:
    if not spec.plans_split:
        return None
    return dataclasses.replace(split or SplitRequest(), mode=spec.mode, format=Format(edge_format))


def _edge_format(profile: Profile, spec: SdkSpec) -> str:
    """The artifact format every requested platform can load, from the profile's formats in its order."""
    offered = [f.value for f in profile.accepts.formats]
    for fmt in offered:
        if all(fmt in platforms.get(p).formats for p in spec.platforms):
            return fmt
    needs = "; ".join(f"{p} loads {', '.join(platforms.get(p).formats)}" for p in spec.platforms)
    raise InvalidInputError(
        f"profile {profile.name!r} ships {', '.join(offered)} only, and no format suits every platform ({needs}); "
        "build each platform separately or choose a profile that ships a format they share"
    )


FEATURE_TASKS = ("embedding", "regression")  # outputs that are values, not class scores


def options_for_task(options: CompressOptions, task: str) -> CompressOptions:
    """The gate the task calls for: an embedding's or a regressor's ``[N, C]`` output has no class, so its largest
    coordinate is not held to the top-1 floor (``min_top1_agreement`` 0) unless that floor was asked for; cosine
    (or accuracy, with labels) still decides."""
    if task in FEATURE_TASKS and "min_top1_agreement" not in options.model_fields_set:
        return options.model_copy(update={"min_top1_agreement": 0.0})
    return options


def _check_labels_early(source, samples, spec: SdkSpec) -> None:
    """Run the source model on one sample so labels-vs-outputs mistakes fail before anything is converted."""
    if spec.resolved_task != "classification":
        return
    outputs = source.reference_runner().run(samples.take(0, 1).inputs)
    shapes = [{"name": f"output {i}", "shape": list(np.shape(o))} for i, o in enumerate(outputs)]
    check_labels(list(spec.labels) if spec.labels else None, shapes, "classification")
