"""The HTML report's context for the optional sections: layers, mixed precision, split plan, pruning.

Each function returns ``None`` when its section does not apply to the build; none of them words anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compressor.bundle.report_context import CandidateRow
from compressor.bundle.report_layers import LayerFigures, layer_figures, readable_name

CHART_LAYERS = 40  # the per-layer chart shows at most this many operators (the most work); the table lists all


@dataclass(frozen=True)
class Layers:
    """Per-operator figures of one artifact; ``charted`` are those the chart draws, in execution order."""

    artifact: str
    rows: tuple[LayerFigures, ...]
    charted: tuple[LayerFigures, ...]
    total_macs: int
    total_weight_bytes: int
    peak_output_bytes: int


@dataclass(frozen=True)
class MixedLayer:
    name: str
    scope: str
    chosen: str
    bits: int
    sensitivity: dict[str, float]  # rung -> measured 1 - cosine of the model's outputs with only this layer lowered


@dataclass(frozen=True)
class Mixed:
    candidate: str
    layers: tuple[MixedLayer, ...]
    counts: dict[str, int]
    trials: int
    activation_aware: bool

    @property
    def measured(self) -> bool:
        """False when the smallest plan passed on its first trial, so no layer's sensitivity was needed."""
        return any(layer.sensitivity for layer in self.layers)


@dataclass(frozen=True)
class PlanRow:
    label: str
    kind: str
    head_ms: float
    transfer_ms: float
    tail_ms: float
    total_ms: float
    up_bytes: int
    head_macs: int
    tail_macs: int
    shipped: bool


@dataclass(frozen=True)
class Split:
    cut: str
    objective: str
    uplink_mbps: float
    rtt_ms: float
    rows: tuple[PlanRow, ...]
    shipped: PlanRow
    all_edge_ms: float
    all_cloud_ms: float
    head_file: str
    head_format: str
    head_precision: str
    head_size_bytes: int
    intermediate_shape: tuple
    transfer_scale: float
    transfer_zero_point: int


@dataclass(frozen=True)
class Variant:
    """A pruned or distilled model and its candidates: before/after figures and the fine-tuning curve."""

    label: str
    technique: dict
    params_before: int | None
    params_after: int | None
    nonzero_after: int | None
    macs_before: int | None
    macs_after: int | None
    accuracy_before: float | None
    candidates: tuple[CandidateRow, ...]
    epoch_losses: tuple[float, ...]
    fine_tune: dict | None

    @property
    def best(self) -> CandidateRow | None:
        """The candidate of this variant with the best accuracy (or cosine) on the user's data."""
        measured = [c for c in self.candidates if c.status != "error"]
        return max(measured, key=lambda c: (c.accuracy or 0.0, c.cosine_mean or 0.0), default=None)


def layers(report: dict, build_dir: Path) -> Layers | None:
    """Per-operator figures of the shipped artifact (the profile's first format), read from the build folder."""
    index = report["selected"]
    if index is None:
        return None
    artifact = report["artifacts"][index]
    path = build_dir / artifact["path"] if artifact["path"] else None
    if path is None or not path.is_file():
        return None
    rows = tuple(layer_figures(path, artifact["format"]))
    busiest = sorted(rows, key=lambda r: (-r.macs, -r.weight_bytes, r.index))[:CHART_LAYERS]
    return Layers(
        artifact["name"],
        rows,
        tuple(sorted(busiest, key=lambda r: r.index)),
        sum(r.macs for r in rows),
        sum(r.weight_bytes for r in rows),
        max((r.activation_bytes for r in rows), default=0),
    )


def mixed(report: dict) -> Mixed | None:
    """The mixed-precision candidate's per-layer choices and measured sensitivities, when the build made one."""
    for artifact in report["artifacts"]:
        plan = (artifact["technique"] or {}).get("mixed_precision")
        if plan:
            sensitivity = plan["sensitivity_1_minus_cosine"]
            rows = tuple(
                MixedLayer(readable_name(scope), scope, rung, plan["bits"][scope], sensitivity.get(scope, {}))
                for scope, rung in plan["precision"].items()
            )
            return Mixed(artifact["name"], rows, plan["counts"], plan["trials"], plan["activation_aware"])
    return None


def split(manifest: dict | None) -> Split | None:
    """The planner's table and the shipped cut, from the manifest's ``split`` section."""
    section = (manifest or {}).get("split")
    if not section or "rows" not in section["plan"]:
        return None
    plan = section["plan"]
    rows = tuple(
        PlanRow(
            r["label"],
            r["kind"],
            r["head_ms"],
            r["transfer_ms"],
            r["tail_ms"],
            r["head_ms"] + r["transfer_ms"] + r["tail_ms"],
            r["up_bytes"],
            r["head_macs"],
            r["tail_macs"],
            r["label"] == plan["shipped"],
        )
        for r in plan["rows"]
    )
    head, quant = section["head"], section["intermediate"]["quantization"]
    return Split(
        section["cut"],
        plan["objective"],
        plan["uplink_mbps"],
        plan["rtt_ms"],
        rows,
        next(r for r in rows if r.shipped),
        plan["all_edge_ms"],
        plan["all_cloud_ms"],
        head["file"],
        head["format"],
        head["precision"],
        head["size_bytes"],
        tuple(section["intermediate"]["shape"]),
        quant["scale"],
        quant["zero_point"],
    )


def variants(report: dict, rows: list[CandidateRow]) -> list[Variant]:
    """Every pruned or distilled variant with its candidates, in build order (mixed precision, searched or trained on
    the int4 grid, is not one)."""
    reference = next((r.reference_accuracy for r in rows if r.reference_accuracy is not None), None)
    groups: dict[str, list[tuple[dict, CandidateRow]]] = {}
    for artifact, row in zip(report["artifacts"], rows):
        if artifact["variant"] and not {"mixed_precision", "int4_qat"} & set(artifact["technique"] or {}):
            groups.setdefault(artifact["variant"], []).append((artifact, row))
    return [_variant(label, members, report["source"], reference) for label, members in groups.items()]


def _variant(label: str, members: list[tuple[dict, CandidateRow]], source: dict, reference: float | None) -> Variant:
    first = members[0][0]
    technique = first["technique"] or {}
    before, after = technique.get("before") or {}, technique.get("after") or {}
    fine_tune = technique.get("fine_tune")
    return Variant(
        label,
        technique,
        before.get("params", source["params"]),
        after.get("params", first["params"]),
        after.get("nonzero_params"),
        before.get("macs", source["macs"]),
        after.get("macs", first["macs"]),
        reference,
        tuple(row for _, row in members),
        tuple((fine_tune or {}).get("epoch_losses", ())),
        fine_tune,
    )
