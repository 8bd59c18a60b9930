"""Distil a user-supplied student module (Python API ``student=``) from the submitted model, as one more variant.

The student was checked against the teacher before the build (same inputs, same output shapes); a copy of it is
trained on the teacher's soft targets at the options' temperature, mixed with hard labels when the data has them,
within the options' epoch and time bounds.  It then converts, validates and is measured like the pruned variants,
under the label ``student-distill``.
"""

from __future__ import annotations

import copy

from compressor.passes.contract import build_pass
from compressor.state import BuildInputs, BuildResults, Variant
from compressor.training import fine_tune

LABEL = "student-distill"


@build_pass(writes=("variants",))
def run(inputs: BuildInputs, results: BuildResults) -> None:
    from compressor import pruning  # torch loads only for builds that distill

    options = inputs.options
    args = inputs.sample_args()
    teacher = inputs.source.teacher(args)
    assert inputs.student is not None, "the pipeline runs this pass for a student only"
    student = copy.deepcopy(inputs.student)
    after = pruning.count(student, args)
    variant = Variant(LABEL, student, after["params"])
    summary = fine_tune(inputs, variant, inputs.data.training, teacher=teacher, distilling=True)
    technique = {
        "student": type(inputs.student).__name__,
        "before": pruning.count(teacher, args),
        "after": pruning.count(student, args),
        "distill": {"temperature": options.temperature, "alpha": options.distill_alpha},
        "fine_tune": summary,
    }
    results.variants.append(Variant(LABEL, student, after["params"], technique))
