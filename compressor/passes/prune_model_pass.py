"""Prune the source model into one variant per sparsity (a ladder of them when searching under targets).

Structured pruning removes channels and attention heads with Torch-Pruning,
ranked by the chosen importance criterion; unstructured pruning zeroes the
smallest weights with ``torch.nn.utils.prune``; block pruning replaces the
residual blocks whose bypass changes the outputs least by identity
(``compressor.blocks``).  Unless distillation follows,
each pruned variant is fine-tuned on hard labels (or, with unlabeled data, on
the original model's outputs) within the options' epoch and time bounds.
"""

from __future__ import annotations

from compressor.state import BuildState, Variant

DEFAULT_SPARSITY = 0.5
SEARCH_SPARSITIES = {"structured": (0.25, 0.5, 0.75), "unstructured": (0.5, 0.7, 0.8, 0.9), "blocks": (0.25, 0.5, 0.75)}


def run(state: BuildState) -> None:
    from compressor import finetune, pruning  # torch and Torch-Pruning load only for builds that prune

    options = state.options
    original, teacher = state.source.torch_module(), state.source.teacher()
    sparsities = sparsities_to_try(options)
    stage = state.progress.stage(f"prune {options.prune}", len(sparsities))
    data = finetune.training_data(state)
    args = state.torch_sample_args()
    if options.prune in ("structured", "unstructured"):  # a model file may need rebuilding with layers: once
        original = pruning.prunable_form(original, args, options.prune)
    before = pruning.count(teacher, args)
    for sparsity in sparsities:
        variant = _pruned(state, original, sparsity, data, args)
        variant.technique["before"] = before
        variant.technique["after"] = pruning.count(variant.module, args)
        if not options.distill:
            variant.technique["fine_tune"] = fine_tune(
                state, variant, data, teacher=None if data.labels is not None else teacher
            )
        state.variants.append(variant)
        stage.advance(f"{variant.label}: {variant.technique['after']['nonzero_params']:,} non-zero params")


def sparsities_to_try(options) -> list[float]:
    """The requested sparsity, or when searching the kind's ladder (plus the requested one)."""
    if not options.searching:
        return [options.sparsity or DEFAULT_SPARSITY]
    ladder = set(SEARCH_SPARSITIES[options.prune]) | ({options.sparsity} if options.sparsity else set())
    return sorted(ladder)


def fine_tune(state: BuildState, variant: Variant, data, teacher=None) -> dict:
    """Train ``variant`` in place (distilling from ``teacher`` when given), reporting progress; return the summary."""
    from compressor import finetune

    options = state.options
    config = finetune.TrainConfig(
        epochs=options.finetune_epochs,
        seconds=options.finetune_seconds,
        seed=options.finetune_seed,
        temperature=options.temperature if options.distill else 1.0,
        alpha=options.distill_alpha,
    )
    stage = state.progress.stage(f"fine-tune {variant.label}", max(options.finetune_epochs, 1))
    return finetune.train(
        variant.module, data, config, teacher=teacher, masks=variant.masks, clusters=variant.clusters, stage=stage
    )


def _pruned(state: BuildState, original, sparsity: float, data, args) -> Variant:
    from compressor import pruning

    options = state.options
    percent = round(100 * sparsity)
    technique = {"prune": options.prune, "sparsity": sparsity, "scope": options.prune_scope}
    if options.prune == "blocks":
        from compressor import blocks

        module, outcome = blocks.prune_blocks(original, args, sparsity, data)
        technique.update(criterion="output-cosine", scope="global", **outcome)
        return Variant(f"blocks{percent}", module, pruning.count(module, args)["params"], technique)
    if options.prune == "structured":
        module = pruning.prune_structured(original, args, sparsity, options.criterion, data, options.prune_scope)
        technique["criterion"] = options.criterion
        return Variant(
            f"structured{percent}-{options.criterion}", module, pruning.count(module, args)["params"], technique
        )
    module, masks = pruning.prune_unstructured(original, sparsity, options.prune_scope, example_args=args)
    technique["criterion"] = "magnitude"
    technique["achieved_sparsity"] = round(pruning.achieved_sparsity(masks), 4)
    return Variant(f"unstructured{percent}", module, pruning.count(module, args)["params"], technique, masks)
