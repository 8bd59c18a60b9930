"""Hold measured candidates to the search targets: download size and host latency.

A candidate over a target gets a fit problem, so selection skips it and the report says by how much it missed.
"""

from __future__ import annotations

from compressor.passes.contract import build_pass
from compressor.state import BuildInputs, BuildResults


@build_pass(writes=("candidates",))
def run(inputs: BuildInputs, results: BuildResults) -> None:
    options = inputs.options
    for candidate in results.candidates:
        if candidate.error is not None or candidate.host_latency_ms is None:
            continue
        size_kb = candidate.download_size_bytes / 1024
        if options.target_size_kb is not None and size_kb > options.target_size_kb:
            candidate.fit_problems.append(
                f"download size {size_kb:.1f} KB exceeds target {options.target_size_kb:g} KB"
            )
        latency = candidate.host_latency_ms["p50"]
        if options.target_latency_ms is not None and latency > options.target_latency_ms:
            candidate.fit_problems.append(f"host p50 {latency:.3f} ms exceeds target {options.target_latency_ms:g} ms")
