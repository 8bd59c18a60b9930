"""Mixed precision by sensitivity (issue 6): per-layer int4/int8/fp16 weights chosen on the user's data."""

from __future__ import annotations

import pytest
import torch

from compressor.api import load_source, run_build
from compressor.errors import TechniqueNotApplicableError
from compressor.options import CompressOptions
from compressor.passes.quantize_mixed_pass import weighted_layers
from compressor.profiles import Precision
from prune_models import TinyTransformer, fit, labelled_data


@pytest.fixture(scope="module")
def transformer_build(tmp_path_factory):
    x, y = labelled_data((6, 8), count=96)
    model = fit(TinyTransformer(), x, y, epochs=5)
    source, data = load_source(model, (torch.from_numpy(x[:1]),), {"x": x})  # unlabeled: the cosine gate applies
    options = CompressOptions(precisions=(Precision.INT8_DYNAMIC,), mixed_precision=True, min_cosine=0.999, latency_repeats=5)
    return run_build(source, data, "pixel-8", options, workdir=tmp_path_factory.mktemp("mixed"))


def test_mixed_candidate_passes_the_gate_at_most_int8_size(transformer_build):
    by_name = {c.name: c for c in transformer_build.candidates}
    mixed, int8 = by_name["mixed.int8-dynamic.tflite"], by_name["int8-dynamic.tflite"]
    assert mixed.error is None and mixed.passed_gate, mixed.metrics
    assert mixed.metrics["cosine_mean"] >= 0.999
    assert mixed.size_bytes <= int8.size_bytes
    plan = mixed.technique["mixed_precision"]
    layers = weighted_layers(transformer_build.workdir / "fp32-base.tflite")
    assert set(plan["bits"]) == {layer.scope for layer in layers} and len(layers) >= 13  # 2 x (q, k, v, out, 2 mlp) + embed + head
    assert set(plan["bits"].values()) <= {4, 8, 16}
    assert set(plan["sensitivity_1_minus_cosine"]) == set(plan["bits"])
    assert plan["trials"] >= len(layers)


def test_mixed_precision_needs_a_tflite_profile_with_weight_quantization(digits_files):
    source, data = load_source(digits_files / "model.pt2", data=digits_files / "data.npz")
    with pytest.raises(TechniqueNotApplicableError, match="mixed precision by sensitivity .* does not accept"):
        run_build(source, data, "jetson-orin-nano", CompressOptions(mixed_precision=True))


def test_mixed_integer_layers_run_integer_kernels(transformer_build):
    """int4/int8 layers are dynamic-range (weights fed to the op as integers), not weight-only (dequantized to float)."""
    from ai_edge_litert.interpreter import Interpreter

    mixed = next(c for c in transformer_build.candidates if c.name == "mixed.int8-dynamic.tflite")
    ops = [d["op_name"] for d in Interpreter(model_path=str(mixed.path))._get_ops_details()]  # noqa: SLF001
    assert ops.count("DEQUANTIZE") <= mixed.technique["mixed_precision"]["counts"]["16"]  # only fp16 weights dequantize
