"""Every registered name has a test that exercises it: a new loader, criterion, converter, convention, platform,
command or technique without one fails here (the registries are the lists; CASES names each one's test)."""

from __future__ import annotations

import importlib
import typing

import pytest

from compressor.adapters import attention_conventions
from compressor.converters import converters
from compressor.importance import criteria
from compressor.options import CompressOptions
from compressor.profiles import all_profiles
from compressor.sources import loaders
from sdkgen.commands import commands
from sdkgen.platforms import platforms

PRUNE_KINDS = [k for k in typing.get_args(CompressOptions.model_fields["prune"].annotation) if k != "none"]
TECHNIQUES = [
    *PRUNE_KINDS,
    "distill",
    "student",
    "cluster",
    "mixed_precision",
    "search",
    "split",
    "holdout",
    "selection",
    "calibration",
    "bias_correction",
    "gptq",
    "int8_fallback",
    "qat",
    "unpad_max_pools",
    "unit_clamps_as_relu6",
    "divisions_by_roots_as_rsqrt",
    "activation_matmuls_as_mul_sum",
    "gelus_as_sigmoid",
    "float_activations",
    "below_gate",
]

# registry -> name -> "test_module::test_function" (parametrized tests cover every name they iterate over)
CASES = {
    "loader": {
        ".pt2": "test_inputs::test_exported_program_to_onnx_profile",
        ".pt": "test_inputs::test_torchscript_reaches_tflite_and_onnx",
        ".pth": "test_inputs::test_torchscript_reaches_tflite_and_onnx",  # the same TorchScript loader
        ".onnx": "test_inputs::test_onnx_to_onnx_quantizes_the_submitted_graph",
        ".keras": "test_inputs::test_keras_reaches_tflite",
    },
    "criterion": {name: "test_prune::test_structured_pruning_removes_parameters_and_macs" for name in criteria},
    "converter": {
        "tflite": "test_compress_cli::test_every_precision_and_format_runs_and_stays_close",
        "onnx": "test_compress_cli::test_every_precision_and_format_runs_and_stays_close",
    },
    "attention convention": {
        name: "test_prune::test_attention_heads_are_pruned_under_every_convention" for name in attention_conventions
    },
    "profile": {name: "test_profiles::test_profile_builds_and_selects_what_it_accepts" for name in all_profiles()},
    "platform": {name: "sdk.test_sdk_golden::test_rendered_files_match_golden" for name in platforms},
    "command": {name: "test_compress_cli::test_help_on_every_command" for name in commands},
    "technique": {
        "unstructured": "test_prune::test_unstructured_pruning_zeroes_weights_and_fine_tuning_keeps_them",
        "structured": "test_prune::test_pipeline_adds_pruned_and_distilled_candidates_to_the_report",
        "blocks": "test_prune_blocks::test_pipeline_adds_a_block_pruned_distilled_candidate",
        "distill": "test_prune::test_distillation_beats_no_distillation_on_digits",
        "student": "test_prune_blocks::test_user_student_is_distilled_into_its_own_candidate",
        "cluster": "test_cluster::test_pipeline_ships_clustered_int8_artifacts_with_shared_weight_bytes",
        "mixed_precision": "test_prune_mixed::test_mixed_candidate_passes_the_gate_at_most_int8_size",
        "search": "test_prune::test_search_under_targets_tries_a_sparsity_ladder_and_meets_the_target",
        "split": "test_split::test_split_build_writes_a_gated_split_section",
        "holdout": "test_holdout::test_a_build_validates_on_the_held_out_part_only",
        "selection": "test_selection::test_a_build_explains_its_pick",
        "calibration": "test_calibration::test_ranges_clip_outliers_that_minmax_keeps",
        "bias_correction": "test_calibration::test_bias_correction_gives_int8_layers_the_float_output_means_back",
        "gptq": "test_gptq::test_int8_dynamic_ships_the_gptq_rounding_which_survives_quantization_and_holds_out",
        "int8_fallback": "test_calibration::test_a_failing_int8_full_candidate_gets_a_mixed_int8_one",
        "qat": "test_int8_qat::test_qat_candidate_is_integer_only_and_closer_to_float_than_post_training_int8",
        "unpad_max_pools": "test_int8_qat::test_a_padded_max_pool_after_relu_converts_to_pad_and_gives_the_same_outputs",
        "unit_clamps_as_relu6": "test_int8_qat::test_a_hard_sigmoid_converts_to_relu6_and_gives_the_same_outputs",
        "divisions_by_roots_as_rsqrt": "test_int8_qat::test_a_written_out_layer_norm_converts_to_rsqrt_and_gives_the_same_outputs",
        "float_activations": "test_calibration::test_int8_dynamic_runs_the_layer_that_loses_most_on_float_activations",
        "activation_matmuls_as_mul_sum": "test_int8_qat::test_attention_matmuls_convert_to_mul_and_sum_for_a_target_without_batch_matmul",
        "gelus_as_sigmoid": "test_int8_qat::test_attention_matmuls_convert_to_mul_and_sum_for_a_target_without_batch_matmul",
        "below_gate": "test_compress_cli::test_an_integer_only_profile_ships_its_closest_candidate_below_the_gate_and_says_so",
    },
}
REGISTRIES = {
    "loader": loaders.names(),
    "criterion": criteria.names(),
    "converter": converters.names(),
    "attention convention": attention_conventions.names(),
    "profile": list(all_profiles()),
    "platform": platforms.names(),
    "command": commands.names(),
    "technique": TECHNIQUES,
}


@pytest.mark.parametrize("registry", sorted(REGISTRIES))
def test_every_registered_name_has_a_test(registry):
    import sdkgen.cli  # noqa: F401 - registers the commands

    missing = sorted(set(REGISTRIES[registry]) - set(CASES[registry]))
    assert not missing, f"{registry} without a test: {missing}; add one and name it in CASES"
    for name, case in CASES[registry].items():
        module, function = case.split("::")
        assert callable(getattr(importlib.import_module(module), function, None)), f"{registry} {name}: no {case}"
