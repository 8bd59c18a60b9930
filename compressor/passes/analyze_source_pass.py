"""Count the source model's multiply-accumulates for one sample (for device latency estimates).

Each format counts its own way (PyTorch's FlopCounterMode, TensorFlow's profiler, the ONNX graph's own shapes);
a model none of them can count gets no figure, and estimates then use operator costs only.
"""

from __future__ import annotations

from compressor.passes.contract import build_pass
from compressor.state import BuildInputs, BuildResults


@build_pass(writes=("macs",))
def run(inputs: BuildInputs, results: BuildResults) -> None:
    stage = inputs.progress.stage("analyze", 1)
    try:
        results.macs = inputs.source.macs(inputs.sample_args())
    except Exception:  # noqa: BLE001 - a figure for estimates only: a model that cannot be counted has none
        results.macs = None
    stage.advance(f"{results.macs or 0:,} MACs")
