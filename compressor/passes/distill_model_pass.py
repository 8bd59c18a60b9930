"""Knowledge distillation: train a copy of each pruned variant (the student) on the original model's soft targets.

The teacher is the model as submitted; the loss mixes KL divergence at the options' temperature with hard-label
cross-entropy when the data has labels, and uses the teacher alone when it has none.  Training is bounded by the
options' epochs and seconds and reports progress per epoch.  Each distilled variant is made from its pruned one
(``parent``), which is then not converted itself.
"""

from __future__ import annotations

import copy

from compressor.passes.contract import build_pass
from compressor.state import BuildInputs, BuildResults, Variant
from compressor.training import fine_tune


@build_pass(writes=("variants",))
def run(inputs: BuildInputs, results: BuildResults) -> None:
    from compressor import pruning  # torch loads only for builds that distill

    args = inputs.sample_args()
    teacher = inputs.source.teacher(args)
    options = inputs.options
    for parent in results.leaves():
        if "distill" in parent.technique:
            continue
        student = Variant(
            f"{parent.label}-distill",
            copy.deepcopy(parent.module),
            parent.params,
            constraints=parent.constraints,
            parent=parent.label,
        )
        summary = fine_tune(inputs, student, inputs.data.training, teacher=teacher)
        technique = {
            **parent.technique,
            "distill": {"temperature": options.temperature, "alpha": options.distill_alpha},
            "fine_tune": summary,
            "after": pruning.count(student.module, args),
        }
        results.variants.append(
            Variant(student.label, student.module, student.params, technique, student.constraints, parent.label)
        )
