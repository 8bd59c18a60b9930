"""Measure each artifact: size (raw and deflated), graph figures, host latency, device estimate, profile fit.

Latency is timed last, in interleaved rounds over every artifact of the same format, so that the selection's
latency ratios are not the drift of a busy machine between one candidate and the next.
"""

from __future__ import annotations

from compressor.converters import failure_reason
from compressor.measure import measure, time_interleaved
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
                latency=False,
            )
        except Exception as exc:  # noqa: BLE001 - one artifact that cannot be measured fails alone
            candidate.error = failure_reason("measurement", exc)
        stage.advance(candidate.name)
    for fmt in sorted({c.format for c in pending}, key=lambda f: f.value):
        timed = [(c, c.macs or results.macs or 0) for c in pending if c.format is fmt and c.error is None]
        try:
            time_interleaved(timed, inputs.sample(), inputs.profile, options.latency_warmup, options.latency_repeats)
        except Exception:  # noqa: BLE001 - then each alone, so that the one that cannot run fails alone
            for candidate, macs in timed:
                try:
                    time_interleaved([(candidate, macs)], inputs.sample(), inputs.profile, 1, options.latency_repeats)
                except Exception as exc:  # noqa: BLE001
                    candidate.error = failure_reason("measurement", exc)
