"""The manifest's ``split`` section: head and tail files copied into the build, the cut, its transfer quantization."""

from __future__ import annotations

import shutil
from pathlib import Path

from compressor.loaders import sha256_file
from compressor.manifest import oip_tensor
from compressor.passes.measure_artifacts_pass import describe_io
from compressor.runtimes import OnnxRunner, open_artifact
from sdkgen.spec import SdkSpec

SPLIT_DIR = "split"
TAIL_SUFFIX = "-tail"


def tail_model_name(spec: SdkSpec) -> str:
    """The name the server serves the split tail under (beside the cloud model, ``spec.python_package``)."""
    return f"{spec.python_package}{TAIL_SUFFIX}"


def split_section(spec: SdkSpec, outcome, bundle: Path) -> dict | None:
    """Copy the outcome's head and tail into ``bundle/split/`` and describe them; ``None`` unless a cut ships."""
    artifacts = outcome.artifacts if outcome is not None else None
    if artifacts is None:
        return None
    (bundle / SPLIT_DIR).mkdir(exist_ok=True)
    head_rel = f"{SPLIT_DIR}/head.{artifacts.head_format.value}"
    tail_rel = f"{SPLIT_DIR}/tail.onnx"
    shutil.copyfile(artifacts.head_path, bundle / head_rel)
    shutil.copyfile(artifacts.tail_path, bundle / tail_rel)
    head_io = describe_io(open_artifact(bundle / head_rel, artifacts.head_format.value))
    tail = OnnxRunner(bundle / tail_rel)
    cut, _row = artifacts.cut, outcome.row
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


def plan_summary(outcome) -> dict:
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
