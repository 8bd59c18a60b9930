"""Write a build's bundle: candidates, the selected artifact(s), ``report.json``, ``summary.txt`` and, for SDK
builds, the cloud model, the split files and ``model-manifest.json``."""

from __future__ import annotations

import html
import json
import os
import shutil
from pathlib import Path

from compressor.bundle.compose import manifest_for
from compressor.bundle.manifest import CLOUD_MODEL, MANIFEST_FILE, write_manifest
from compressor.bundle.report import build_report, summary_text
from compressor.bundle.report_html import write_report_html
from compressor.bundle.spec import BundleSpec
from compressor.converters import ConvertInput, converters
from compressor.errors import ConversionError
from compressor.native_output import captured
from compressor.profiles import Format
from compressor.state import BuildInputs, BuildResults


def write_bundle(inputs: BuildInputs, results: BuildResults, dest: Path, html: bool = True) -> dict:
    """Copy candidates and the selected artifact(s) into ``dest`` and write ``report.json`` and ``summary.txt``.

    ``html`` also writes ``report.html`` (a caller that adds a manifest renders it afterwards, with the manifest).
    """
    paths: dict[int, str] = {}
    (dest / "candidates").mkdir(parents=True, exist_ok=True)
    for i, candidate in enumerate(results.candidates):
        if candidate.error is None and candidate.path is not None:
            rel = f"candidates/{candidate.name}"
            shutil.copyfile(candidate.path, dest / rel)
            paths[i] = rel
    outputs = {}
    for fmt, index in results.selected.items():
        name = f"model.{fmt.value}"
        _link_or_copy(dest / paths[index], dest / name)
        outputs[fmt.value] = name
    if inputs.log.exists():
        shutil.copyfile(inputs.log, dest / "converter.log")
    report = build_report(inputs, results, paths, outputs)
    (dest / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (dest / "summary.txt").write_text(summary_text(report))
    if html:
        write_html_or_note(report, dest)
    return report


def write_html_or_note(report: dict, dest: Path, manifest: dict | None = None) -> None:
    """``report.html`` for the bundle; a report that cannot be rendered never fails the build it describes: the
    page then says why, and ``report.json`` is complete either way."""
    try:
        write_report_html(report, dest, manifest)
    except Exception as exc:  # noqa: BLE001 - the bundle is already whole; the HTML is a view of report.json
        reason = html.escape(f"{type(exc).__name__}: {exc}")
        (dest / "report.html").write_text(
            '<!DOCTYPE html><html lang="en"><meta charset="utf-8"><title>EdgeForge report</title>'
            f"<p>The HTML report could not be rendered ({reason}); report.json holds every figure. "
            "Run <code>sdkgen report DIR</code> after upgrading to try again.</p></html>\n"
        )


def write_cloud_model(inputs: BuildInputs, results: BuildResults, dest: Path) -> Path:
    """The fp32 ONNX model the inference server serves, with a dynamic batch, at ``dest/cloud/model.onnx``.

    The build's own ONNX conversion of the submitted model is reused when it was made with a dynamic batch.
    """
    out = dest / CLOUD_MODEL
    out.parent.mkdir(parents=True, exist_ok=True)
    base = results.bases.get(("", Format.ONNX))
    if base is not None and not inputs.profile.accepts.static_shapes:
        shutil.copyfile(base, out)
        return out
    converter = converters.get(Format.ONNX.value)
    job = ConvertInput(
        inputs.source,
        inputs.sample_args(),
        inputs.data.calibration,
        inputs.workdir / "cloud",
        (),
        dynamic_batch=True,
        log=inputs.log,
    )
    job.workdir.mkdir(parents=True, exist_ok=True)
    try:
        with captured(inputs.log):
            converter.fp32(job, out)
    except ConversionError:
        raise
    except Exception as exc:
        from compressor.converters import failure_reason

        raise ConversionError(failure_reason("exporting the cloud model to ONNX", exc)) from exc
    return out


def write_manifest_for(
    spec: BundleSpec, inputs: BuildInputs, results: BuildResults, report: dict, edge_format: str, dest: Path
) -> dict:
    """Write ``dest/model-manifest.json`` for the ``edge_format`` artifact (cloud model and split files included)."""
    manifest = manifest_for(spec, inputs, results, report, edge_format, dest)
    write_manifest(manifest, dest / MANIFEST_FILE)
    return manifest


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
