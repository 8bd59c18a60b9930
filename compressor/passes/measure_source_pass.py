"""Count the source model's multiply-accumulates for one sample (used for device latency estimates)."""

from __future__ import annotations

from compressor.analysis import keras_macs, torch_macs
from compressor.errors import TechniqueNotApplicableError
from compressor.state import BuildState


def run(state: BuildState) -> None:
    stage = state.progress.stage("analyze", 1)
    source = state.source
    try:
        if source.family == "keras":
            state.macs = keras_macs(source.handle, [s.with_batch(1).shape for s in source.inputs])
        else:
            state.macs = torch_macs(source.torch_module(), state.torch_sample_args())
    except TechniqueNotApplicableError:
        state.macs = None  # an ONNX graph onnx2torch cannot read: no MAC count, estimates use op costs only
    stage.advance(f"{state.macs or 0:,} MACs")
