"""The pipeline for one build, assembled in one visible function."""

from __future__ import annotations

from compressor.passes import (
    convert_onnx_pass,
    convert_tflite_pass,
    measure_artifacts_pass,
    measure_source_pass,
    select_artifact_pass,
    validate_artifacts_pass,
)
from compressor.profiles import Format, Profile
from compressor.options import CompressOptions
from compressor.registry import Registry
from compressor.state import BuildState, Pass

converters: Registry[Pass] = Registry("artifact format")
converters.register(Format.TFLITE.value)(convert_tflite_pass.run)
converters.register(Format.ONNX.value)(convert_onnx_pass.run)


def build_pipeline(options: CompressOptions, profile: Profile) -> list[Pass]:
    """The ordered passes that turn a source model into validated, measured, selected artifacts."""
    del options  # later recipes add pruning and distillation passes here
    return [
        measure_source_pass.run,
        *(converters.get(fmt.value) for fmt in profile.accepts.formats),
        validate_artifacts_pass.run,
        measure_artifacts_pass.run,
        select_artifact_pass.run,
    ]


def run_pipeline(state: BuildState) -> BuildState:
    for step in build_pipeline(state.options, state.profile):
        step(state)
    return state
