"""Weight clustering: each variant (or, without pruning, the model as submitted) shares ``k`` values per layer.

Runs after pruning and distillation: the non-zero weights of every weight matrix are clustered
(``compressor.clustering``), then the centroids are fine-tuned within the options' epoch and time bounds, on
hard labels, or on the original model's outputs when distilling or when the data has no labels.  Clustered
variants are quantized with one int8 scale per tensor (``BuildState.per_tensor_weights``), so their integer
artifacts hold at most ``k`` distinct weight bytes per layer.
"""

from __future__ import annotations

from compressor.passes.prune_model_pass import fine_tune
from compressor.state import BuildState, Variant


def run(state: BuildState) -> None:
    from compressor import clustering, finetune, pruning  # torch loads only for builds that cluster

    clusters = state.options.cluster
    args = state.torch_sample_args()
    teacher = state.source.teacher()
    if not state.variants:  # nothing pruned: cluster the model as submitted
        before = pruning.count(teacher, args)
        state.variants.append(Variant("", state.source.torch_module(), before["params"], {"before": before}))
    data = finetune.training_data(state)
    stage = state.progress.stage(f"cluster weights ({clusters} values per layer)", len(state.variants))
    for variant in state.variants:
        variant.module, variant.clusters = clustering.cluster_weights(variant.module, clusters, variant.masks, args)
        variant.masks = None  # pruned weights are unassigned: tying keeps them zero (and the module may be rebuilt)
        variant.label = f"{variant.label}-cluster{clusters}".lstrip("-")
        summary = {
            "clusters": clusters,
            "layers": len(variant.clusters),
            "init": "linear",
            "int8_weights": "per tensor",
        }
        if state.options.finetune_epochs:
            use_teacher = state.options.distill or data.labels is None
            summary["fine_tune"] = fine_tune(state, variant, data, teacher=teacher if use_teacher else None)
        summary["distinct_values"] = clustering.distinct_values(variant.module, variant.clusters)
        variant.technique["cluster"] = summary
        variant.technique["after"] = pruning.count(variant.module, args)
        stage.advance(f"{variant.label}: at most {summary['distinct_values']} values per layer")
