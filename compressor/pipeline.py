"""The pipeline for one build, assembled in one visible function.

Each step is a :class:`~compressor.passes.contract.Pass`: it declares the result fields it reads and writes, and is
held to that (and to results only growing) on every run.
"""

from __future__ import annotations

from compressor import mixed_precision
from compressor.errors import GateFailedError
from compressor.options import CompressOptions
from compressor.passes import (
    analyze_source_pass,
    check_targets_pass,
    cluster_weights_pass,
    convert_models_pass,
    distill_model_pass,
    distill_student_pass,
    fallback_int8_pass,
    finetune_int8_pass,
    measure_artifacts_pass,
    prune_model_pass,
    quantize_mixed_pass,
    select_artifact_pass,
    split_model_pass,
    validate_artifacts_pass,
)
from compressor.passes.contract import Pass
from compressor.profiles import Format, Precision, Profile
from compressor.state import BuildInputs, BuildResults


def build_pipeline(
    options: CompressOptions, profile: Profile, split: bool = False, student: bool = False
) -> list[Pass]:
    """The ordered passes that turn a source model into validated, measured, selected artifacts."""
    pruned = options.prune != "none"
    wanted = options.precisions or tuple(Precision)
    fallback = (
        options.int8_fallback
        and Format.TFLITE in profile.accepts.formats
        and Precision.INT8_FULL in profile.accepts.precisions
        and Precision.INT8_FULL in wanted
    )
    qat = (
        options.qat_steps > 0
        and profile.accepts.integer_only
        and Format.TFLITE in profile.accepts.formats
        and Precision.INT8_FULL in profile.accepts.precisions
        and Precision.INT8_FULL in wanted
    )
    second_look = [
        *([finetune_int8_pass.run] if qat else []),
        *([fallback_int8_pass.run] if fallback else []),
    ]
    return [
        analyze_source_pass.run,
        *([prune_model_pass.run] if pruned else []),
        *([distill_model_pass.run] if options.distill else []),
        *([distill_student_pass.run] if student else []),
        *([cluster_weights_pass.run] if options.cluster else []),
        convert_models_pass.run,
        *([quantize_mixed_pass.run] if mixed_precision.wanted(profile, options) else []),
        validate_artifacts_pass.run,
        *([*second_look, validate_artifacts_pass.run] if second_look else []),
        measure_artifacts_pass.run,
        *([check_targets_pass.run] if options.searching else []),
        select_artifact_pass.run,
        *([split_model_pass.run] if split else []),
    ]


def run_pipeline(inputs: BuildInputs) -> BuildResults:
    """Run every pass of the build's pipeline on ``inputs``; return the results."""
    results = BuildResults()
    passes = build_pipeline(
        inputs.options, inputs.profile, split=inputs.split_request is not None, student=inputs.student is not None
    )
    try:
        for step in passes:
            step(inputs, results)
    except GateFailedError as exc:
        exc.results = results
        raise
    return results
