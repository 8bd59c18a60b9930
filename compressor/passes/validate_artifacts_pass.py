"""Run every artifact in its real runtime on the user's data and compare it with the original model."""

from __future__ import annotations

from compressor.metrics import compare, passes_gate
from compressor.runtimes import open_artifact
from compressor.state import BuildState


def run(state: BuildState) -> None:
    pending = [c for c in state.candidates if c.error is None]
    stage = state.progress.stage("validate", len(pending) + 1)
    if state.reference_outputs is None:
        state.reference_outputs = state.source.reference_runner().run(state.data.inputs)
    stage.advance("original model")
    for candidate in pending:
        try:
            runner = open_artifact(candidate.path, candidate.format.value)
            outputs = runner.run(state.data.inputs)
            candidate.metrics = compare(state.reference_outputs, outputs, state.data.labels)
        except Exception as exc:  # noqa: BLE001 - an artifact its runtime rejects is a failed candidate
            candidate.error = f"runtime failed: {type(exc).__name__}: {str(exc)[:300]}"
            stage.advance(f"{candidate.name} failed")
            continue
        candidate.passed_gate = passes_gate(
            candidate.metrics, state.options.max_accuracy_drop, state.options.min_cosine
        )
        stage.advance(candidate.name)
