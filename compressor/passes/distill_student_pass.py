"""Distil a user-supplied student module (Python API ``student=``) from the submitted model, as one more variant.

The student was checked against the teacher before the build (same inputs,
same output shapes); a copy of it is trained on the teacher's soft targets at
the options' temperature, mixed with hard labels when the data has them,
within the options' epoch and time bounds.  It then converts, validates and
is measured like the pruned variants, under the label ``student-distill``.
"""

from __future__ import annotations

import copy

from compressor.state import BuildState, Variant

LABEL = "student-distill"


def run(state: BuildState) -> None:
    from compressor import finetune, pruning  # torch loads only for builds that distill

    options = state.options
    teacher = state.source.teacher()
    data = finetune.training_data(state)
    args = state.torch_sample_args()
    student = copy.deepcopy(state.student)
    after = pruning.count(student, args)
    variant = Variant(
        LABEL,
        student,
        after["params"],
        {
            "student": type(state.student).__name__,
            "before": pruning.count(teacher, args),
            "after": after,
            "distill": {"temperature": options.temperature, "alpha": options.distill_alpha},
        },
    )
    config = finetune.TrainConfig(
        epochs=options.finetune_epochs,
        seconds=options.finetune_seconds,
        seed=options.finetune_seed,
        temperature=options.temperature,
        alpha=options.distill_alpha,
    )
    stage = state.progress.stage(f"fine-tune {LABEL}", max(options.finetune_epochs, 1))
    variant.technique["fine_tune"] = finetune.train(student, data, config, teacher=teacher, stage=stage)
    state.variants.append(variant)
