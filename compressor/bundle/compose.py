"""The manifest of one build: composed from what the build measured, its bundle folder and the SDK spec."""

from __future__ import annotations

import shutil
from pathlib import Path

from compressor.bundle.manifest import CLOUD_MODEL, MANIFEST_SCHEMA_VERSION, oip_tensor
from compressor.bundle.spec import BundleSpec
from compressor.measure import describe_file
from compressor.runtimes import OnnxRunner
from compressor.selection import choice_in
from compressor.sources import sha256_file
from compressor.splitting.outcome import SplitOutcome
from compressor.state import BuildInputs, BuildResults


def manifest_for(
    spec: BundleSpec, inputs: BuildInputs, results: BuildResults, report: dict, edge_format: str, bundle: Path
) -> dict:
    """The manifest for the selected ``edge_format`` artifact in ``bundle`` and the cloud model beside it."""
    artifact = report["artifacts"][report["selected_by_format"][edge_format]]
    cloud = OnnxRunner(bundle / CLOUD_MODEL)
    first = inputs.source.inputs[0]
    image = len(first.shape) == 4
    layout = inputs.source.layout if image else "NC"
    channels = first.shape[1 if layout == "NCHW" else -1] if image else None
    classifier = spec.resolved_task == "classification"
    split = results.split
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "name": spec.name,
        "profile": inputs.profile.name,
        "task": spec.resolved_task,
        "model": {
            "file": report["outputs"][edge_format],
            "sha256": artifact["sha256"],
            "format": edge_format,
            "precision": artifact["precision"],
            "size_bytes": artifact["size_bytes"],
            "below_gate": bool(choice_in(report, edge_format).get("below_gate")),
        },
        "inputs": [{**t, "layout": layout} for t in artifact["io"]["inputs"]],
        "outputs": [{**t, "layout": None} for t in artifact["io"]["outputs"]],
        "labels": list(spec.labels) if spec.labels else None,
        "preprocessing": {
            "layout": layout,
            "pixel_scale": spec.pixel_scale,
            "pixel_offset": spec.pixel_offset,
            "channels": channels,
        },
        "postprocessing": {"activation": "softmax" if classifier else "none"},
        "policy": {
            "mode": split.row.kind if spec.plans_split and split is not None else spec.mode,
            "confidence_threshold": spec.confidence_threshold if classifier else None,
            "timeout_ms": spec.timeout_ms,
            "retries": spec.retries,
        },
        "cloud": {
            "endpoint": spec.cloud_endpoint,
            "model_name": spec.cloud_model_name,
            "model_version": spec.model_version,
            "file": CLOUD_MODEL,
            "sha256": sha256_file(bundle / CLOUD_MODEL),
            "inputs": [oip_tensor(s.to_json()) for s in cloud.inputs],
            "outputs": [oip_tensor(s.to_json()) for s in cloud.outputs],
        },
        "split": split_section(spec, split, bundle),
    }


SPLIT_DIR = "split"
TAIL_SUFFIX = "-tail"


def tail_model_name(spec: BundleSpec) -> str:
    """The name the server serves the split tail under (beside the cloud model)."""
    return f"{spec.cloud_model_name}{TAIL_SUFFIX}"


def split_section(spec: BundleSpec, outcome: SplitOutcome | None, bundle: Path) -> dict | None:
    """Copy the outcome's head and tail into ``bundle/split/`` and describe them; ``None`` unless a cut ships."""
    if outcome is None or outcome.artifacts is None:
        return None
    artifacts = outcome.artifacts
    (bundle / SPLIT_DIR).mkdir(exist_ok=True)
    head_rel = f"{SPLIT_DIR}/head.{artifacts.head_format.value}"
    tail_rel = f"{SPLIT_DIR}/tail.onnx"
    shutil.copyfile(artifacts.head_path, bundle / head_rel)
    shutil.copyfile(artifacts.tail_path, bundle / tail_rel)
    head_io = describe_file(bundle / head_rel, artifacts.head_format.value)
    tail = OnnxRunner(bundle / tail_rel)
    cut = artifacts.cut
    return {
        "cut": cut.node,
        "head": {
            "file": head_rel,
            "sha256": sha256_file(bundle / head_rel),
            "format": artifacts.head_format.value,
            "precision": artifacts.head_precision.value,
            "size_bytes": (bundle / head_rel).stat().st_size,
            "inputs": [{**t, "layout": None} for t in head_io["inputs"]],
            "outputs": [{**t, "layout": None} for t in head_io["outputs"]],
        },
        "head_inputs": [outcome.graph_inputs.index(n) for n in cut.head_inputs],
        "side_inputs": [outcome.graph_inputs.index(n) for n in cut.side_inputs],
        "intermediate": {
            "name": tail.inputs[0].name,
            "shape": list(cut.shape),
            "dtype": "int8",
            "layout": None,
            "quantization": {"scale": artifacts.transfer.scale, "zero_point": artifacts.transfer.zero_point},
        },
        "tail": {
            "model_name": tail_model_name(spec),
            "model_version": spec.model_version,
            "file": tail_rel,
            "sha256": sha256_file(bundle / tail_rel),
            "inputs": [oip_tensor(s.to_json()) for s in tail.inputs],
            "outputs": [oip_tensor(s.to_json()) for s in tail.outputs],
        },
        "plan": plan_summary(outcome),
    }


def plan_summary(outcome: SplitOutcome) -> dict:
    """The planner's figures for the manifest and report: the choice, its estimate and the alternatives'."""
    plan, row = outcome.plan, outcome.row
    return {
        "objective": plan.objective,
        "uplink_mbps": plan.network.uplink_mbps,
        "rtt_ms": plan.network.rtt_ms,
        "estimated_ms": {"head": row.head_ms, "transfer": row.transfer_ms, "tail": row.tail_ms, "total": row.total_ms},
        "all_edge_ms": plan.row("all-edge").total_ms,
        "all_cloud_ms": plan.row("all-cloud").total_ms,
        "transfer_bytes": row.up_bytes,
        "rows": [  # every way the planner costed (all-cloud, each cut, all-edge): the report's stacked bars
            {
                "label": r.label,
                "kind": r.kind,
                "head_ms": r.head_ms,
                "transfer_ms": r.transfer_ms,
                "tail_ms": r.tail_ms,
                "up_bytes": r.up_bytes,
                "head_macs": r.head.macs,
                "tail_macs": r.tail.macs,
                "energy_mj": r.energy_mj,
            }
            for r in plan.rows
        ],
        "shipped": row.label,
    }
