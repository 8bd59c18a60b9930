"""Plan a split of the source model for the profile's device and network, and export the chosen cut.

Runs after selection: the head uses the selected artifact's format and precision.  Mode ``auto`` keeps the
planner's choice (all-edge, a cut, or all-cloud); mode ``split`` takes the cheapest cut.  A cut whose composed
head -> int8 -> tail path fails the accuracy gate is never shipped: auto falls back to the cheaper of all-edge and
all-cloud, split raises :class:`GateFailedError`.
"""

from __future__ import annotations

from compressor.errors import GateFailedError, TechniqueNotApplicableError
from compressor.passes.contract import build_pass
from compressor.splitting.export import SplitInput, export_split
from compressor.splitting.graph import export_graph, input_names
from compressor.splitting.outcome import SplitOutcome
from compressor.splitting.planner import Plan, PlanRow, measure_invoke_ms, measure_whole_ms, network_for, plan_split
from compressor.state import BuildInputs, BuildResults


@build_pass(reads=("candidates", "selected"), writes=("split", "reference_outputs"))
def run(inputs: BuildInputs, results: BuildResults) -> None:
    request = inputs.split_request
    assert request is not None, "the pipeline runs this pass for split requests only"
    stage = inputs.progress.stage("split", 3)
    module, args = inputs.source.to_torch(), inputs.sample_args()
    gm = export_graph(module, args)
    fmt = request.format or next(iter(results.selected))
    if fmt not in results.selected:
        raise TechniqueNotApplicableError(f"the split head needs a {fmt.value} artifact, and none was selected")
    precision = results.candidates[results.selected[fmt]].precision
    network = network_for(inputs.profile, request.uplink_mbps, request.rtt_ms)
    plan = plan_split(
        gm,
        args,
        inputs.profile,
        precision,
        measure_whole_ms(module, args),
        network=network,
        objective=request.objective,
        measured_invoke_ms=measure_invoke_ms(),
    )
    stage.advance(f"{len(plan.rows) - 2} cuts")
    row = plan.chosen if request.mode == "auto" else _cheapest_split(plan)
    artifacts, note = None, ""
    cut = row.cut
    if cut is not None:
        if results.reference_outputs is None:
            results.reference_outputs = inputs.source.reference_runner().run(inputs.data.validation.inputs)
        artifacts = export_split(
            SplitInput(
                gm,
                cut,
                fmt,
                precision,
                inputs.data.validation,
                results.reference_outputs,
                inputs.gate,
                inputs.options.calibration_samples,
                not inputs.profile.accepts.static_shapes,
                inputs.workdir / "split",
                inputs.log,
                inputs.profile.accepts.onnx_weight_bits(),
            )
        )
        stage.advance(f"exported cut {cut.node}")
        if not artifacts.passed_gate:
            note = f"cut {cut.node} failed the accuracy gate ({artifacts.metrics})"
            if request.mode == "split":
                raise GateFailedError(f"{note}; try a looser budget or --mode auto")
            row, artifacts = min((plan.row("all-edge"), plan.row("all-cloud")), key=lambda r: r.total_ms), None
    results.split = SplitOutcome(plan, row, artifacts, tuple(input_names(gm)), note)
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
