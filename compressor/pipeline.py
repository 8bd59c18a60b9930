"""The pipeline for one build, assembled in one visible function."""

from __future__ import annotations

from compressor.options import CompressOptions
from compressor.passes import (
    check_targets_pass,
    cluster_weights_pass,
    convert_onnx_pass,
    convert_tflite_pass,
    convert_variants_pass,
    distill_model_pass,
    distill_student_pass,
    measure_artifacts_pass,
    measure_source_pass,
    prune_model_pass,
    quantize_mixed_pass,
    select_artifact_pass,
    split_model_pass,
    validate_artifacts_pass,
)
from compressor.profiles import Format, Profile
from compressor.registry import Registry
from compressor.state import BuildState, Pass

converters: Registry[Pass] = Registry("artifact format")
converters.register(Format.TFLITE.value)(convert_tflite_pass.run)
converters.register(Format.ONNX.value)(convert_onnx_pass.run)


def build_pipeline(
    options: CompressOptions, profile: Profile, split: bool = False, student: bool = False
) -> list[Pass]:
    """The ordered passes that turn a source model into validated, measured, selected artifacts."""
    pruned = options.prune != "none"
    return [
        measure_source_pass.run,
        *([prune_model_pass.run] if pruned else []),
        *([distill_model_pass.run] if options.distill else []),
        *([distill_student_pass.run] if student else []),
        *([cluster_weights_pass.run] if options.cluster else []),
        *(converters.get(fmt.value) for fmt in profile.accepts.formats),
        *([convert_variants_pass.run] if pruned or student or options.cluster else []),
        *([quantize_mixed_pass.run] if options.mixed_precision else []),
        validate_artifacts_pass.run,
        measure_artifacts_pass.run,
        *([check_targets_pass.run] if options.searching else []),
        select_artifact_pass.run,
        *([split_model_pass.run] if split else []),
    ]


def run_pipeline(state: BuildState) -> BuildState:
    for step in build_pipeline(
        state.options, state.profile, split=state.split_request is not None, student=state.student is not None
    ):
        step(state)
    return state
