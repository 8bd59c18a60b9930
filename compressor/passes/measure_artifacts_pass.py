"""Measure each artifact: size (raw and deflated), graph figures, host latency, device estimate, profile fit."""

from __future__ import annotations

from compressor.converters import failure_reason
from compressor.measure import measure
from compressor.passes.contract import build_pass
from compressor.state import BuildInputs, BuildResults


@build_pass(reads=("macs",), writes=("candidates",))
def run(inputs: BuildInputs, results: BuildResults) -> None:
    pending = [c for c in results.candidates if c.error is None]
    stage = inputs.progress.stage("measure", len(pending))
    options = inputs.options
    for candidate in pending:
        try:
            measure(
                candidate,
                inputs.sample(),
                candidate.macs or results.macs or 0,
                inputs.profile,
                options.latency_warmup,
                options.latency_repeats,
            )
        except Exception as exc:  # noqa: BLE001 - one artifact that cannot be measured fails alone
            candidate.error = failure_reason("measurement", exc)
        stage.advance(candidate.name)
