"""Prune the source model into one variant per sparsity (a ladder of them when searching under targets).

Structured pruning removes channels and attention heads with Torch-Pruning, ranked by the chosen importance
criterion; unstructured pruning zeroes the smallest weights with ``torch.nn.utils.prune``; block pruning replaces
the residual blocks whose bypass changes the outputs least by identity (``compressor.blocks``).  Unless
distillation follows, each pruned variant is fine-tuned on hard labels (or, with unlabeled data, on the original
model's outputs) within the options' epoch and time bounds.
"""

from __future__ import annotations

from compressor.passes.contract import build_pass
from compressor.state import BuildInputs, BuildResults, Variant
from compressor.training import fine_tune

DEFAULT_SPARSITY = 0.5
SEARCH_SPARSITIES = {
    "structured": (0.25, 0.5, 0.75),
    "unstructured": (0.5, 0.7, 0.8, 0.9),
    "blocks": (0.25, 0.5, 0.75),
}


@build_pass(writes=("variants",))
def run(inputs: BuildInputs, results: BuildResults) -> None:
    from compressor import pruning  # torch and Torch-Pruning load only for builds that prune
    from compressor.layered import prunable_form

    options = inputs.options
    args = inputs.sample_args()
    original, teacher = inputs.source.to_torch(), inputs.source.teacher(args)
    sparsities = sparsities_to_try(options)
    stage = inputs.progress.stage(f"prune {options.prune}", len(sparsities))
    data = inputs.data.training
    if options.prune in ("structured", "unstructured"):  # a model file may need rebuilding with layers: once
        original = prunable_form(original, args, options.prune)
    before = pruning.count(teacher, args)
    for sparsity in sparsities:
        variant = _pruned(inputs, original, sparsity, args)
        technique = {**variant.technique, "before": before, "after": pruning.count(variant.module, args)}
        if not options.distill:
            labeled = data.labels is not None
            technique["fine_tune"] = fine_tune(inputs, variant, data, teacher=None if labeled else teacher)
            technique["after"] = pruning.count(variant.module, args)
        variant = Variant(variant.label, variant.module, variant.params, technique, variant.constraints)
        results.variants.append(variant)
        stage.advance(f"{variant.label}: {technique['after']['nonzero_params']:,} non-zero params")


def sparsities_to_try(options) -> list[float]:
    """The requested sparsity, or when searching the kind's ladder (plus the requested one)."""
    if not options.searching:
        return [options.sparsity or DEFAULT_SPARSITY]
    ladder = set(SEARCH_SPARSITIES[options.prune]) | ({options.sparsity} if options.sparsity else set())
    return sorted(ladder)


def _pruned(inputs: BuildInputs, original, sparsity: float, args: tuple) -> Variant:
    from compressor import pruning

    options = inputs.options
    percent = round(100 * sparsity)
    technique: dict[str, object] = {"prune": options.prune, "sparsity": sparsity, "scope": options.prune_scope}
    if options.prune == "blocks":
        from compressor import blocks

        module, outcome = blocks.prune_blocks(original, args, sparsity, inputs.data.training)
        technique.update(criterion="output-cosine", scope="global", **outcome)
        return Variant(f"blocks{percent}", module, pruning.count(module, args)["params"], technique)
    if options.prune == "structured":
        module = pruning.prune_structured(
            original, args, sparsity, options.criterion, inputs.data.training, options.prune_scope
        )
        technique["criterion"] = options.criterion
        label = f"structured{percent}-{options.criterion}"
        return Variant(label, module, pruning.count(module, args)["params"], technique)
    module, masks = pruning.prune_unstructured(original, sparsity, options.prune_scope, example_args=args)
    technique["criterion"] = "magnitude"
    technique["achieved_sparsity"] = round(pruning.achieved_sparsity(masks), 4)
    return Variant(f"unstructured{percent}", module, pruning.count(module, args)["params"], technique, (masks,))
