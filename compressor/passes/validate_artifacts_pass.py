"""Run every artifact in its real runtime on the validation samples and compare it with the original model.

Candidates validated already are left as they are, so the pass runs again after one that adds candidates from
validation results (the int8 fallback).
"""

from __future__ import annotations

from compressor.converters import failure_reason
from compressor.metrics import compare
from compressor.passes.contract import build_pass
from compressor.runtimes import open_artifact
from compressor.state import BuildInputs, BuildResults


@build_pass(writes=("candidates", "reference_outputs"))
def run(inputs: BuildInputs, results: BuildResults) -> None:
    pending = [c for c in results.candidates if c.error is None and c.metrics is None]  # run again: the new ones
    stage = inputs.progress.stage("validate", len(pending) + 1)
    validation = inputs.data.validation
    if results.reference_outputs is None:
        results.reference_outputs = inputs.source.reference_runner().run(validation.inputs)
    stage.advance("original model")
    for candidate in pending:
        try:
            outputs = open_artifact(candidate.require_path(), candidate.format.value).run(validation.inputs)
            candidate.metrics = compare(results.reference_outputs, outputs, validation.labels)
        except Exception as exc:  # noqa: BLE001 - an artifact its runtime rejects is a failed candidate
            candidate.error = failure_reason("runtime", exc)
            stage.advance(f"{candidate.name} failed")
            continue
        candidate.passed_gate = inputs.gate.passes(candidate.metrics)
        stage.advance(candidate.name)
