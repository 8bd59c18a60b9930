"""``report.json``: what a build measured (and what it was asked), and the same as a table for people."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import io
import platform
from collections.abc import Mapping
from pathlib import Path

from compressor.bundle.compose import plan_summary
from compressor.runtimes import HOST_THREADS
from compressor.state import BuildInputs, BuildResults, Candidate

REPORT_SCHEMA_VERSION = 1
TOOLS = (
    "edgeforge",
    "torch",
    "tensorflow",
    "litert-torch",
    "ai-edge-litert",
    "ai-edge-quantizer",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "onnx2torch",
    "keras",
    "numpy",
)


def tool_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def artifact_entry(candidate: Candidate, inputs: BuildInputs, results: BuildResults, rel_path: str | None) -> dict:
    return {
        "path": rel_path,
        "name": candidate.name,
        "variant": candidate.variant or None,
        "technique": candidate.technique,
        "format": candidate.format.value,
        "precision": candidate.precision.value,
        "size_bytes": candidate.size_bytes or None,
        "download_size_bytes": candidate.download_size_bytes or None,
        "sha256": candidate.sha256 or None,
        "params": candidate.params if candidate.params is not None else inputs.source.params,
        "macs": candidate.macs if candidate.macs is not None else results.macs,
        "route": candidate.route or None,
        "weight_bytes": candidate.weight_bytes or None,
        "peak_activation_bytes": candidate.peak_activation_bytes or None,
        "n_ops": candidate.n_ops or None,
        "op_types": list(candidate.op_types),
        "host_latency_ms": candidate.host_latency_ms,
        "estimated_device_latency_ms": candidate.estimated_device_latency_ms,
        "metrics": candidate.metrics,
        "passed_gate": candidate.passed_gate,
        "fits_profile": candidate.error is None and not candidate.fit_problems,
        "fit_problems": candidate.fit_problems,
        "error": candidate.error,
        "io": candidate.io,
    }


def build_report(
    inputs: BuildInputs, results: BuildResults, paths: Mapping[int, str | None], outputs: dict[str, str]
) -> dict:
    """The report dict; ``paths`` maps candidate index to its path relative to the report."""
    selected = dict(results.selected)
    first = next((selected[f] for f in inputs.profile.accepts.formats if f in selected), None)
    data = inputs.data
    labeled = data.validation.labels is not None
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "profile": inputs.profile.name,
        "profile_summary": {
            "display_name": inputs.profile.display_name,
            "platform": inputs.profile.platform,
            "runtime": inputs.profile.runtime,
            "compute_figures_estimated": inputs.profile.compute.estimate,
        },
        "source": {**inputs.source.describe(), "macs": results.macs},
        "options": inputs.options.model_dump(mode="json"),
        "options_given": sorted(inputs.options.model_fields_set),
        "data": {
            "samples": len(data.validation),
            "labeled": labeled,
            "synthetic": data.synthetic,
            "validation_samples": len(data.validation),
            "calibration_samples": len(data.calibration),
            "training_samples": len(data.training),
            "split": data.split,
        },
        "gate": {
            "metric": "accuracy_drop" if labeled else "cosine_mean",
            "max_accuracy_drop": inputs.options.max_accuracy_drop,
            "min_cosine": inputs.options.min_cosine,
        },
        "artifacts": [artifact_entry(c, inputs, results, paths.get(i)) for i, c in enumerate(results.candidates)],
        "selected": first,
        "selected_by_format": {fmt.value: index for fmt, index in selected.items()},
        "selection": {
            "objective": inputs.objective,
            "objective_from": "--select" if inputs.options.select else "profile",
            "by_format": {fmt.value: choice for fmt, choice in results.selection.items()},
        },
        "unshipped": {fmt.value: reason for fmt, reason in results.unshipped.items()},
        "split": plan_summary(results.split) if results.split is not None else None,
        "outputs": outputs,
        "host": {"machine": platform.machine(), "processor": platform.processor() or None, "threads": HOST_THREADS},
        "versions": tool_versions(),
    }


def summary_table(report: dict):
    """A rich Table of the candidates; the selected ones are marked."""
    from rich.table import Table

    source = report["source"]
    table = Table(
        title=f"{Path(source['path'] or 'module').name} -> {report['profile']} ({report['gate']['metric']} gate)"
    )
    for column in (
        "",
        "artifact",
        "size",
        "ratio",
        "accuracy",
        "drop pt",
        "top-1 agr",
        "cos mean",
        "host p50 ms",
        "device est ms",
        "status",
    ):
        table.add_column(column, justify="right" if column not in ("", "artifact", "status") else "left")
    chosen = set(report["selected_by_format"].values())
    for i, a in enumerate(report["artifacts"]):
        m = a["metrics"] or {}
        status = a["error"] or (
            "ok"
            if a["passed_gate"] and a["fits_profile"]
            else (
                "shipped below the gate"
                if i in chosen
                else "gate"
                if not a["passed_gate"]
                else "; ".join(a["fit_problems"])
            )
        )
        table.add_row(
            "*" if i in chosen else "",
            a.get("name") or f"{a['precision']}.{a['format']}",
            _kb(a["size_bytes"]),
            f"{a['size_bytes'] / source['size_bytes']:.2f}" if a["size_bytes"] else "-",
            _pct(m.get("accuracy")),
            _num(m.get("accuracy_drop"), ".2f"),
            _pct(m.get("top1_agreement")),
            _num(m.get("cosine_mean"), ".4f"),
            _num((a["host_latency_ms"] or {}).get("p50"), ".3f"),
            _num(a["estimated_device_latency_ms"], ".3f"),
            status,
        )
    return table


def summary_text(report: dict, width: int = 150) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(summary_table(report))
    for warning in below_gate_warnings(report):
        console.print(warning, highlight=False)
    return console.export_text()


def below_gate_warnings(report: dict) -> list[str]:
    """One line per format that an integer-only profile shipped although it missed the accuracy gate, saying why."""
    by_format = (report.get("selection") or {}).get("by_format") or {}
    return [f"warning ({fmt}): {c['sentence']}" for fmt, c in by_format.items() if c.get("below_gate")]


def _kb(value) -> str:
    return f"{value / 1024:.1f} KB" if value else "-"


def _pct(value) -> str:
    return f"{100 * value:.2f}%" if value is not None else "-"


def _num(value, fmt: str) -> str:
    return format(value, fmt) if value is not None else "-"
