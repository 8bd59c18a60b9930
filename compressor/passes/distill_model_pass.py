"""Knowledge distillation: train each pruned variant (the student) on the original model's soft targets.

The teacher is the model as submitted; the loss mixes KL divergence at the
options' temperature with hard-label cross-entropy when the data has labels,
and uses the teacher alone when it has none.  Training is bounded by the
options' epochs and seconds and reports progress per epoch.
"""

from __future__ import annotations

from compressor.passes.prune_model_pass import fine_tune
from compressor.state import BuildState


def run(state: BuildState) -> None:
    from compressor import finetune  # torch loads only for builds that distill

    teacher = state.source.teacher()
    data = finetune.training_data(state)
    for variant in state.variants:
        if "distill" in variant.technique:
            continue
        variant.label = f"{variant.label}-distill"
        variant.technique["distill"] = {"temperature": state.options.temperature, "alpha": state.options.distill_alpha}
        variant.technique["fine_tune"] = fine_tune(state, variant, data, teacher=teacher)
