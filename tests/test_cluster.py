"""Weight clustering (issue 6): shared values per layer, fine-tuned centroids, per-tensor int8 artifacts."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from test_prune import tiny  # noqa: F401 - the tiny residual CNN and transformer, trained once

from compressor.api import load_source, run_build, write_bundle
from compressor.clustering import cluster_weights, kmeans_1d
from compressor.constraints import UNASSIGNED
from compressor.finetune import TrainConfig, train
from compressor.layered import weight_matrices
from compressor.options import CompressOptions
from compressor.profiles import Precision
from compressor.pruning import prune_unstructured

pytestmark = pytest.mark.slow  # builds or serves real models: not part of make test-fast


def _distinct_nonzero(module: torch.nn.Module) -> dict[str, int]:
    return {name: int(torch.unique(w[w != 0]).numel()) for name, w in weight_matrices(module)}


def test_kmeans_finds_the_centres_of_separated_groups():
    rng = np.random.default_rng(0)
    values = torch.from_numpy(np.concatenate([rng.normal(c, 0.01, 200) for c in (-1.0, 0.2, 3.0)]).astype(np.float32))
    centroids, index = kmeans_1d(values, 3)
    np.testing.assert_allclose(centroids.numpy(), [-1.0, 0.2, 3.0], atol=0.01)
    assert torch.equal(index, torch.arange(3).repeat_interleave(200))


def test_clustering_shares_values_keeps_zeros_and_fine_tuning_moves_centroids(tiny):  # noqa: F811
    _, model, data, _ = tiny
    pruned, masks = prune_unstructured(model, 0.7)
    clustered, clusters = cluster_weights(pruned, 8, masks)
    assignments = clusters.assignments
    assert set(assignments) == set(masks.masks)
    assert max(_distinct_nonzero(clustered).values()) <= 8
    assert max(_distinct_nonzero(pruned).values()) > 8  # the input is left alone: its weights are all different
    before = {name: w.detach().clone() for name, w in weight_matrices(clustered)}
    train(clustered, data, TrainConfig(epochs=2, seconds=30), constraints=(clusters,))
    after = dict(weight_matrices(clustered))
    assert max(_distinct_nonzero(clustered).values()) <= 8
    for name, assignment in assignments.items():
        mask = masks.masks[name]
        assert torch.equal(assignment == UNASSIGNED, mask == 0), name  # pruned weights have no cluster
        assert torch.all(after[name][mask == 0] == 0), name
        for cluster in assignment.unique()[1:]:  # every member of a cluster holds one value
            assert after[name][assignment == cluster].unique().numel() == 1, name
    assert any(not torch.equal(before[name], after[name]) for name in before)  # centroids were trained


def test_model_files_are_clustered_through_their_rebuild(digits_files):
    source, _ = load_source(digits_files / "model.pt2", data=digits_files / "data.npz")
    clustered, clusters = cluster_weights(source.to_torch(), 4, example_args=source.sample_args())
    assert len(clusters) and max(_distinct_nonzero(clustered).values()) <= 4


def test_pipeline_ships_clustered_int8_artifacts_with_shared_weight_bytes(digits_files, digits_split, tmp_path):
    """prune 50% + cluster 16 on the digits file: TFLite and ONNX int8 artifacts hold <= 16 distinct non-zero weight
    bytes per tensor (one scale per tensor), pass the gate in LiteRT and onnxruntime (2.5 pt: 3 of the 120
    samples, int8 on a width-8 CNN as in test_compress_cli), and download smaller than pruning alone."""
    from ai_edge_litert.interpreter import Interpreter

    x_train, y_train, _, _ = digits_split
    np.savez(tmp_path / "train.npz", x=x_train, labels=y_train)
    source, data = load_source(digits_files / "model.pt2", data=digits_files / "data.npz")
    common = {
        "prune": "unstructured",
        "sparsity": 0.5,
        "finetune_epochs": 10,
        "latency_repeats": 3,
        "precisions": (Precision.INT8_FULL,),
        "train_data": tmp_path / "train.npz",
    }
    for name in ("plain", "clustered", "bundle"):
        (tmp_path / name).mkdir()
    plain = run_build(
        source, data, "host", CompressOptions(max_accuracy_drop=100, **common), workdir=tmp_path / "plain"
    )
    clustered = run_build(
        source,
        data,
        "host",
        CompressOptions(cluster=16, max_accuracy_drop=2.5, **common),
        workdir=tmp_path / "clustered",
    )
    report = write_bundle(clustered, tmp_path / "bundle")
    by_name = {a["name"]: a for a in report["artifacts"]}
    plain_by_name = {c.name: c for c in plain.candidates}
    for fmt in ("tflite", "onnx"):
        artifact = by_name[f"unstructured50-cluster16.int8-full.{fmt}"]
        assert artifact["error"] is None and artifact["passed_gate"], (artifact["error"], artifact["metrics"])
        assert artifact["technique"]["cluster"]["distinct_values"] <= 16
        assert artifact["technique"]["cluster"]["fine_tune"]["epochs"] == 10
        unclustered = plain_by_name[f"unstructured50.int8-full.{fmt}"]
        assert artifact["download_size_bytes"] < 0.85 * unclustered.download_size_bytes, fmt
    bundle = tmp_path / "bundle"
    interpreter = Interpreter(model_path=str(bundle / by_name["unstructured50-cluster16.int8-full.tflite"]["path"]))
    kernels = [
        t
        for t in interpreter.get_tensor_details()
        if t["dtype"] == np.int8 and len(t["shape"]) > 1 and _is_constant(interpreter, t["index"])
    ]
    per_tensor = [
        interpreter.get_tensor(t["index"]) for t in kernels if len(t["quantization_parameters"]["scales"]) == 1
    ]
    assert len(per_tensor) == len(kernels) - 1  # all but the depthwise stem (per channel: see convert_tflite_pass)
    onnx_model = onnx.load(str(bundle / by_name["unstructured50-cluster16.int8-full.onnx"]["path"]))
    onnx_kernels = [
        a for a in map(numpy_helper.to_array, onnx_model.graph.initializer) if a.dtype == np.int8 and a.ndim > 1
    ]
    assert len(per_tensor) >= 4 and len(onnx_kernels) >= 5
    for w in per_tensor + onnx_kernels:
        assert np.unique(w[w != 0]).size <= 16, w.shape


def _is_constant(interpreter, index: int) -> bool:
    try:
        interpreter.get_tensor(index)
    except ValueError:
        return False
    return True


def test_clustering_without_pruning_makes_its_own_variant(digits_files, tmp_path):
    source, data = load_source(digits_files / "model.pt2", data=digits_files / "data.npz")
    options = CompressOptions(
        cluster=8, finetune_epochs=1, precisions=(Precision.FP32,), max_accuracy_drop=100, latency_repeats=3
    )
    state = run_build(source, data, "host", options, workdir=tmp_path)
    clustered = [c for c in state.candidates if c.variant == "cluster8"]
    assert [c.format.value for c in clustered] == ["tflite", "onnx"] and all(c.error is None for c in clustered)
    assert clustered[0].technique["cluster"]["distinct_values"] <= 8
    original = next(c for c in state.candidates if c.name == "fp32.tflite")
    assert clustered[0].download_size_bytes < original.download_size_bytes  # 8 floats per layer deflate well


@pytest.mark.parametrize("clusters", [1, 257])
def test_cluster_count_out_of_range_is_refused(clusters):
    with pytest.raises(ValueError, match="cluster"):
        CompressOptions(cluster=clusters)


def test_cli_passes_cluster_to_the_options():
    import argparse

    from sdkgen.cmd_compress import add_model_arguments
    from sdkgen.option_flags import options_from

    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    args = parser.parse_args(["m.pt2", "--profile", "host", "--out", "o", "--prune", "unstructured", "--cluster", "16"])
    assert options_from(args).cluster == 16
