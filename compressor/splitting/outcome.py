"""What the split step decided: the plan, the row the build ships and, for a cut, its artifacts."""

from __future__ import annotations

from dataclasses import dataclass

from compressor.splitting.export import SplitArtifacts
from compressor.splitting.planner import Plan, PlanRow


@dataclass(frozen=True)
class SplitOutcome:
    plan: Plan
    row: PlanRow  # what the build ships: kind edge, split or cloud
    artifacts: SplitArtifacts | None
    graph_inputs: tuple[str, ...]  # the model's inputs in order, as the graph names them (cuts refer to these)
    note: str = ""
