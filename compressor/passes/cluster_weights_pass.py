"""Weight clustering: each variant (or, without pruning, the model as submitted) shares ``k`` values per layer.

Runs after pruning and distillation: the non-zero weights of every weight matrix are clustered
(``compressor.clustering``), then the centroids are fine-tuned within the options' epoch and time bounds, on hard
labels, or on the original model's outputs when distilling or when the data has no labels.  Clustered variants are
quantized with one int8 scale per tensor (``Variant.per_tensor_weights``), so their integer artifacts hold at most
``k`` distinct weight bytes per layer.
"""

from __future__ import annotations

from compressor.passes.contract import build_pass
from compressor.state import BuildInputs, BuildResults, Variant
from compressor.training import fine_tune


@build_pass(writes=("variants",))
def run(inputs: BuildInputs, results: BuildResults) -> None:
    from compressor import clustering, pruning  # torch loads only for builds that cluster
    from compressor.constraints import Masks

    clusters = inputs.options.cluster
    assert clusters is not None, "the pipeline runs this pass when clustering only"
    args = inputs.sample_args()
    teacher = inputs.source.teacher(args)
    parents = results.leaves()
    if not parents:  # nothing pruned: cluster the model as submitted
        before = pruning.count(teacher, args)
        parents = [Variant("", inputs.source.to_torch(), before["params"], {"before": before})]
    data = inputs.data.training
    stage = inputs.progress.stage(f"cluster weights ({clusters} values per layer)", len(parents))
    for parent in parents:
        masks = next((c for c in parent.constraints if isinstance(c, Masks)), None)
        module, tied = clustering.cluster_weights(parent.module, clusters, masks, args)
        # pruned weights are unassigned: tying keeps them zero (and the module may have been rebuilt)
        variant = Variant(
            f"{parent.label}-cluster{clusters}".lstrip("-"),
            module,
            parent.params,
            constraints=(tied,),
            parent=parent.label or None,
            per_tensor_weights=True,
        )
        summary: dict[str, object] = {
            "clusters": clusters,
            "layers": len(tied),
            "init": "linear",
            "int8_weights": "per tensor",
        }
        if inputs.options.finetune_epochs:
            use_teacher = inputs.options.distill or data.labels is None
            summary["fine_tune"] = fine_tune(inputs, variant, data, teacher=teacher if use_teacher else None)
        summary["distinct_values"] = clustering.distinct_values(module, tied)
        technique = {**parent.technique, "cluster": summary, "after": pruning.count(module, args)}
        results.variants.append(
            Variant(variant.label, module, parent.params, technique, (tied,), variant.parent, per_tensor_weights=True)
        )
        stage.advance(f"{variant.label}: at most {summary['distinct_values']} values per layer")
