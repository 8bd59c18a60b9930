"""``report.html``: the build's report for people, rendered from ``report.json`` (and the manifest, when present).

Python gathers the facts and draws the charts (:mod:`compressor.bundle.report_context`,
:mod:`compressor.bundle.report_sections`,
:mod:`compressor.bundle.report_charts`); ``templates/report/`` owns every word and the layout, with ``StrictUndefined``.
The page is one self-contained file: styles and SVG charts inline, no script, no external resource, so it opens
from disk, offline, with JavaScript off.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2
from markupsafe import Markup

from compressor.bundle import report_charts, report_sections
from compressor.bundle.manifest import MANIFEST_FILE
from compressor.bundle.plots import Svg
from compressor.bundle.report_context import (
    CandidateRow,
    Selection,
    api_only_options,
    candidate_rows,
    rebuild_command,
    selections,
)
from compressor.bundle.report_sections import Layers, Mixed, Split, Variant
from compressor.errors import InvalidInputError

REPORT_HTML = "report.html"
REPORT_JSON = "report.json"
TEMPLATES = Path(__file__).resolve().parent / "templates"  # package data: the repository's templates/report


@dataclass(frozen=True)
class ReportContext:
    """Everything ``templates/report/report.html.j2`` may use (as ``ctx``)."""

    report: dict
    manifest: dict | None
    candidates: tuple[CandidateRow, ...]
    selections: tuple[Selection, ...]
    command: str
    api_only_options: dict
    layers: Layers | None
    mixed: Mixed | None
    split: Split | None
    variants: tuple[Variant, ...]
    charts: dict[str, Svg]

    @property
    def labeled(self) -> bool:
        return bool(self.report["data"]["labeled"])

    @property
    def failed(self) -> tuple[CandidateRow, ...]:
        """Candidates that could not ship: not built, failed the gate, or did not fit the profile."""
        return tuple(c for c in self.candidates if c.status in ("error", "gate", "fit"))

    def chart(self, name: str) -> Markup:
        """The inline SVG of chart ``name`` (markup matplotlib wrote, ids prefixed; safe to embed)."""
        return Markup(self.charts[name].markup)


def report_context(report: dict, build_dir: Path, manifest: dict | None = None) -> ReportContext:
    """Gather the report's facts and draw its charts; ``build_dir`` holds the artifacts the layer table reads."""
    rows = candidate_rows(report)
    layers = report_sections.layers(report, build_dir)
    mixed = report_sections.mixed(report)
    split = report_sections.split(manifest)
    variants = report_sections.variants(report, rows)
    charts = {}
    if any(r.measured for r in rows):
        charts["size-fidelity"] = report_charts.size_fidelity(rows, report["gate"], bool(report["data"]["labeled"]))
        charts["latency"] = report_charts.latency(rows)
    if layers and layers.charted:
        charts["layers"] = report_charts.layers(layers)
    if mixed and mixed.measured:
        charts["mixed"] = report_charts.mixed(mixed)
    if split:
        charts["split"] = report_charts.split(split)
    if variants:
        charts["pruning"] = report_charts.pruning(variants)
        if any(v.epoch_losses for v in variants):
            charts["fine-tuning"] = report_charts.fine_tuning(variants)
    return ReportContext(
        report,
        manifest,
        tuple(rows),
        tuple(selections(report, rows)),
        shlex.join(rebuild_command(report, manifest, build_dir)),
        api_only_options(report),
        layers,
        mixed,
        split,
        tuple(variants),
        charts,
    )


def environment() -> jinja2.Environment:
    """The Jinja environment of the report templates: strict, autoescaped, tidy whitespace."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_report(report: dict, build_dir: Path, manifest: dict | None = None) -> str:
    """The report page for ``report`` (a ``report.json`` dict) of the build in ``build_dir``, as HTML text."""
    return environment().get_template("report.html.j2").render(ctx=report_context(report, Path(build_dir), manifest))


def write_report_html(report: dict, build_dir: str | Path, manifest: dict | None = None) -> Path:
    """Render the report into ``build_dir/report.html`` (replaced atomically) and return its path."""
    build_dir = Path(build_dir)
    html = render_report(report, build_dir, manifest)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=build_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(html)
    os.chmod(tmp, 0o644)
    os.replace(tmp, build_dir / REPORT_HTML)
    return build_dir / REPORT_HTML


def rerender(build_dir: str | Path) -> Path:
    """Render ``report.html`` again from a build folder's ``report.json`` (and manifest); return its path.

    Raises :class:`InvalidInputError` when the folder holds no readable ``report.json``.
    """
    build_dir = Path(build_dir)
    report = _read_json(build_dir / REPORT_JSON, "a build folder (sdkgen compress or build writes report.json)")
    manifest_path = build_dir / MANIFEST_FILE
    manifest = _read_json(manifest_path, "the build's manifest") if manifest_path.exists() else None
    return write_report_html(report, build_dir, manifest)


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInputError(f"{path} does not exist; expected {what}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path} is not readable JSON ({exc}); expected {what}") from None
