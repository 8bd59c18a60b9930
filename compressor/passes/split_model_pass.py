"""Plan a split of the source model for the profile's device and network, and export the chosen cut.

Runs after selection: the head uses the selected artifact's format and precision.  Mode ``auto`` keeps the
planner's choice (all-edge, a cut, or all-cloud); mode ``split`` takes the cheapest cut.  A cut whose composed
head -> int8 -> tail path fails the accuracy gate is never shipped: auto falls back to the cheaper of all-edge and
all-cloud, split raises :class:`GateFailedError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from compressor.errors import GateFailedError, TechniqueNotApplicableError
from compressor.splitting.export import SplitArtifacts, export_split
from compressor.splitting.graph import export_graph, input_names
from compressor.splitting.planner import Plan, PlanRow, measure_invoke_ms, measure_whole_ms, network_for, plan_split
from compressor.state import BuildState


@dataclass(frozen=True)
class SplitOutcome:
    plan: Plan
    row: PlanRow  # what the build ships: kind edge, split or cloud
    artifacts: SplitArtifacts | None
    graph_inputs: tuple[str, ...]  # the model's inputs in order, as the graph names them (cuts refer to these)
    note: str = ""


def run(state: BuildState) -> None:
    request = state.split_request
    stage = state.progress.stage("split", 3)
    if state.source.family == "keras":
        raise TechniqueNotApplicableError("split needs a PyTorch or ONNX model (its graph is cut with torch.export)")
    module, args = state.source.torch_module(), state.torch_sample_args()
    gm = export_graph(module, args)
    fmt = request.format or next(iter(state.selected))
    precision = state.candidates[state.selected[fmt]].precision
    network = network_for(state.profile, request.uplink_mbps, request.rtt_ms)
    plan = plan_split(
        gm,
        args,
        state.profile,
        precision,
        measure_whole_ms(module, args),
        network=network,
        objective=request.objective,
        measured_invoke_ms=measure_invoke_ms(),
    )
    stage.advance(f"{len(plan.rows) - 2} cuts")
    row = plan.chosen if request.mode == "auto" else _cheapest_split(plan)
    artifacts, note = None, ""
    if row.kind == "split":
        artifacts = export_split(state, gm, row.cut, fmt, precision, state.workdir / "split")
        stage.advance(f"exported cut {row.cut.node}")
        if not artifacts.passed_gate:
            note = f"cut {row.cut.node} failed the accuracy gate ({artifacts.metrics})"
            if request.mode == "split":
                raise GateFailedError(f"{note}; try a looser budget or --mode auto")
            row, artifacts = min((plan.row("all-edge"), plan.row("all-cloud")), key=lambda r: r.total_ms), None
    state.split = SplitOutcome(plan, row, artifacts, tuple(input_names(gm)), note)
    stage.advance(row.label)


def _cheapest_split(plan: Plan) -> PlanRow:
    splits = [r for r in plan.rows if r.kind == "split"]
    if not splits:
        raise TechniqueNotApplicableError(
            "the model's graph has no position where a single tensor crosses from head to tail, so it cannot be "
            "split; use --mode edge or cloud"
        )
    key = (lambda r: r.energy_mj) if plan.objective == "energy" else (lambda r: r.total_ms)
    return min(splits, key=key)
