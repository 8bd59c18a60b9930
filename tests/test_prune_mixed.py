"""Mixed precision by sensitivity (issue 6): per-layer int4 (blockwise or per channel) / int8 / fp16 weights."""

from __future__ import annotations

import pytest
import torch
from prune_models import TinyTransformer, fit, labelled_data

from compressor.api import load_source, run_build
from compressor.errors import TechniqueNotApplicableError
from compressor.metrics import compare
from compressor.mixed_precision import calibrate, ladder, quantize, upgrade_steps, weighted_layers
from compressor.options import CompressOptions
from compressor.profiles import Format, Precision
from compressor.runtimes import open_artifact

pytestmark = pytest.mark.slow  # builds or serves real models: not part of make test-fast


@pytest.fixture(scope="module")
def transformer_build(tmp_path_factory):
    x, y = labelled_data((6, 8), count=96)
    torch.manual_seed(0)  # the initial weights: otherwise they depend on what earlier tests drew
    model = fit(TinyTransformer(), x, y, epochs=5)
    source, data = load_source(model, (torch.from_numpy(x[:1]),), {"x": x})  # unlabeled: the cosine gate applies
    options = CompressOptions(
        precisions=(Precision.INT8_DYNAMIC,), mixed_precision=True, min_cosine=0.999, latency_repeats=5
    )
    return run_build(source, data, "pixel-8", options, workdir=tmp_path_factory.mktemp("mixed"))


def test_mixed_candidate_passes_the_gate_at_most_int8_size(transformer_build):
    by_name = {c.name: c for c in transformer_build.candidates}
    mixed, int8 = by_name["mixed.int8-dynamic.tflite"], by_name["int8-dynamic.tflite"]
    assert mixed.error is None and mixed.passed_gate, mixed.metrics
    assert mixed.metrics["cosine_mean"] >= 0.999
    assert mixed.size_bytes <= int8.size_bytes
    plan = mixed.technique["mixed_precision"]
    layers = weighted_layers(transformer_build.results.bases[("", Format.TFLITE)])
    assert (
        set(plan["precision"]) == {layer.scope for layer in layers} and len(layers) >= 13
    )  # 2 x (q, k, v, out, 2 mlp) + embed + head
    for layer in layers:
        rungs = {rung.name: rung for rung in ladder(layer)}
        assert plan["precision"][layer.scope] in rungs
        assert plan["bits"][layer.scope] == rungs[plan["precision"][layer.scope]].bits
        assert set(plan["sensitivity_1_minus_cosine"][layer.scope]) == set(rungs) - {"fp16"}  # integer rungs measured
    assert sum(plan["counts"].values()) == len(layers)
    assert not (plan["activation_aware"] and plan["uniform_int8"])  # uniform int8 is kept with min-max scales
    assert plan["trials"] >= sum(len(ladder(layer)) - 1 for layer in layers)


def test_ladders_offer_blockwise_int4_where_the_block_divides_the_input(transformer_build):
    layers = weighted_layers(transformer_build.results.bases[("", Format.TFLITE)])
    by_input = {layer.shape[1]: [rung.name for rung in ladder(layer)] for layer in layers}
    assert by_input[8] == ["int4", "int8", "fp16"]  # token features -> dim: no block divides 8
    assert by_input[32] == ["int4", "int4-b32", "int8", "fp16"]  # per channel (the bare recipe's) at the bottom
    assert by_input[64] == ["int4", "int4-b64", "int4-b32", "int8", "fp16"]  # the mlp's second linear


def test_blockwise_int4_is_in_the_flatbuffer_smaller_than_int8_and_runs(transformer_build, tmp_path):
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    base = transformer_build.results.bases[("", Format.TFLITE)]
    layers = weighted_layers(base)
    layer = next(layer for layer in layers if layer.shape[1] == 64)
    rungs = {rung.name: rung for rung in ladder(layer)}
    x, _ = labelled_data((6, 8), count=96)
    calibration = calibrate(base, layers, {"x": x[:16]})
    sizes = {}
    for name in ("int4-b32", "int8"):
        quantize(base, {layer: rungs[name]}, tmp_path / f"{name}.tflite", calibration)
        sizes[name] = (tmp_path / f"{name}.tflite").stat().st_size
    assert sizes["int4-b32"] < sizes["int8"]
    model = fb.read_model(str(tmp_path / "int4-b32.tflite"))
    subgraph = model.subgraphs[0]
    op = next(op for op in subgraph.operators if fb.get_op_scope(op, subgraph.tensors) == layer.scope)
    weight = subgraph.tensors[op.inputs[1]]
    assert weight.type == fb.TENSOR_TYPE_TO_CODE["INT4"]
    details = weight.quantization.details
    assert type(details).__name__ == "BlockwiseQuantizationT" and details.blockSize == 32
    feeds = {"x": x[:16]}
    reference = open_artifact(base, "tflite").run(feeds)
    outputs = open_artifact(tmp_path / "int4-b32.tflite", "tflite").run(feeds)
    assert compare(reference, outputs, None)["cosine_mean"] > 0.99


def test_upgrade_steps_follow_each_layers_lower_hull_best_rate_first():
    from compressor.mixed_precision import FP16, Layer, Rung

    a, b = Layer("a", "FULLY_CONNECTED", (4, 64)), Layer("b", "FULLY_CONNECTED", (4, 64))
    b64, b32, int8 = Rung("int4-b64", 4, 64), Rung("int4-b32", 4, 32), Rung("int8", 8)
    effects = {  # rung: (bytes added, loss)
        a: {b64: (-900, 0.010), b32: (-880, 0.002), int8: (-700, 0.001), FP16: (-500, 0.0)},
        b: {b64: (-900, 0.001), b32: (-880, 0.0012), int8: (-700, 0.0009), FP16: (-500, 0.0)},  # b32: off the hull
    }
    start, steps = upgrade_steps(effects)
    assert start == {a: b64, b: b64}
    assert [(s.layer.scope, s.rung.name) for s in steps][:2] == [("a", "int4-b32"), ("a", "int8")]
    assert ("b", "int4-b32") not in [(s.layer.scope, s.rung.name) for s in steps]
    assert [s.rate for s in steps] == sorted((s.rate for s in steps), reverse=True)


def test_selecting_for_size_adds_the_mixed_candidate_no_bigger_than_the_bare_int4_recipe(tmp_path):
    """``select='size'`` turns mixed precision on without ``--mixed-precision``; where every layer at per-channel
    int4 passes the gate, that plan is kept without measuring sensitivities, and the artifact is no bigger than
    ai-edge-quantizer's stock ``dynamic_wi4_afp32`` recipe on the same fp32 flatbuffer (the bare tool a size-minded
    user would run)."""
    from ai_edge_quantizer import quantizer, recipe

    x, y = labelled_data((6, 8), count=96)
    torch.manual_seed(0)
    model = fit(TinyTransformer(), x, y, epochs=5)
    source, data = load_source(model, (torch.from_numpy(x[:1]),), {"x": x})
    options = CompressOptions(select="size", min_cosine=0.9, min_top1_agreement=0.8, latency_repeats=3)
    state = run_build(source, data, "pixel-8", options, workdir=tmp_path / "build")
    mixed = next(c for c in state.candidates if c.name == "mixed.int8-dynamic.tflite")
    plan = mixed.technique["mixed_precision"]
    assert mixed.error is None and mixed.passed_gate, mixed.metrics
    layers = weighted_layers(state.results.bases[("", Format.TFLITE)])
    assert plan["sensitivity_1_minus_cosine"] == {}, mixed.metrics  # the smallest plan passed: none measured
    assert plan["trials"] <= 2  # that plan, and its min-max form (OSCAR's MUL operations cost bytes)
    assert set(plan["precision"].values()) == {"int4"} and len(plan["precision"]) == len(layers)
    bare = tmp_path / "bare-int4.tflite"
    engine = quantizer.Quantizer(str(state.results.bases[("", Format.TFLITE)]), recipe.dynamic_wi4_afp32())
    engine.quantize(None, enable_progress_report=False).export_model(str(bare), overwrite=True)
    assert mixed.size_bytes <= bare.stat().st_size, (mixed.size_bytes, bare.stat().st_size)
    assert state.candidates[state.results.selected[Format.TFLITE]].name == "mixed.int8-dynamic.tflite"  # smallest
    balanced = run_build(source, data, "pixel-8", options.model_copy(update={"select": None}), workdir=tmp_path / "b")
    assert all(c.variant != "mixed" for c in balanced.candidates)  # pixel-8's balanced default: not asked for


def test_mixed_precision_needs_a_tflite_profile_with_weight_quantization(digits_files):
    source, data = load_source(digits_files / "model.pt2", data=digits_files / "data.npz")
    with pytest.raises(TechniqueNotApplicableError, match="mixed precision by sensitivity .* does not accept"):
        run_build(source, data, "jetson-orin-nano", CompressOptions(mixed_precision=True))


def test_mixed_integer_layers_run_integer_kernels(transformer_build):
    """int4/int8 layers are dynamic-range (weights fed to the op as integers), not weight-only (dequantized to
    float)."""
    from ai_edge_litert.interpreter import Interpreter

    mixed = next(c for c in transformer_build.candidates if c.name == "mixed.int8-dynamic.tflite")
    ops = [d["op_name"] for d in Interpreter(model_path=str(mixed.path))._get_ops_details()]
    assert ops.count("DEQUANTIZE") <= mixed.technique["mixed_precision"]["counts"]["fp16"]  # only fp16 weights do
