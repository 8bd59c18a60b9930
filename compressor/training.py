"""Fine-tuning a variant within a build's options: the bridge between the passes and ``compressor.finetune``."""

from __future__ import annotations

from compressor.data import SampleData
from compressor.state import BuildInputs, Variant


def fine_tune(
    inputs: BuildInputs, variant: Variant, data: SampleData, teacher=None, distilling: bool | None = None
) -> dict:
    """Train ``variant.module`` in place (distilling from ``teacher`` when given) under ``variant.constraints``,
    within the options' epoch and time bounds, reporting progress; return the training summary.

    The soft-target temperature is the options' when distilling (default: when ``--distill`` is on), else 1.
    """
    from compressor import finetune

    options = inputs.options
    distilling = options.distill if distilling is None else distilling
    config = finetune.TrainConfig(
        epochs=options.finetune_epochs,
        seconds=options.finetune_seconds,
        seed=options.finetune_seed,
        temperature=options.temperature if distilling else 1.0,
        alpha=options.distill_alpha,
    )
    stage = inputs.progress.stage(f"fine-tune {variant.label or 'model'}", max(options.finetune_epochs, 1))
    return finetune.train(variant.module, data, config, teacher=teacher, constraints=variant.constraints, stage=stage)
