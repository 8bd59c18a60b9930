"""Pruning a PyTorch module: structured with Torch-Pruning, unstructured with ``torch.nn.utils.prune``.

Structured pruning physically removes channels, filters and attention heads;
Torch-Pruning's dependency graph keeps every coupled layer (residual adds,
BatchNorm, concatenations, attention projections) consistent.  Layers that
produce the model's outputs are never pruned, so the output shape is kept.
Attention heads are found by the convention Torch-Pruning's own examples use:
a module with an integer ``num_heads`` (or ``num_attention_heads``) and
query/key/value ``nn.Linear`` children; its head count is updated after pruning.

Unstructured pruning zeroes the smallest-magnitude weights, ranked over all
layers (global) or within each layer; the masks are baked into the weights and
returned so fine-tuning keeps the zeros.
"""

from __future__ import annotations

import copy

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.utils import prune

from compressor.adapters import attention_modules
from compressor.constraints import Masks
from compressor.data import SampleData
from compressor.errors import TechniqueNotApplicableError
from compressor.finetune import BATCH, first_output, task_loss, tensors
from compressor.importance import criteria
from compressor.layered import PRUNABLE, prunable_form, weight_matrices

MAX_LAYER_RATIO = 0.9  # never empty a layer entirely, even in global ranking
MAX_SCORING_SAMPLES = 512


def count(module: nn.Module, example_args: tuple) -> dict:
    """Parameters (all and non-zero) and multiply-accumulates of one forward pass on ``example_args``."""
    from compressor.analysis import torch_macs

    params = [p.detach() for p in module.parameters()]
    return {
        "params": int(sum(p.numel() for p in params)),
        "nonzero_params": int(sum(int(torch.count_nonzero(p)) for p in params)),
        "macs": torch_macs(module, example_args),
    }


def prune_structured(
    module: nn.Module, example_args: tuple, sparsity: float, criterion: str, data: SampleData, scope: str = "global"
) -> nn.Module:
    """A copy of ``module`` with ``sparsity`` of its channels and attention heads removed, ranked by ``criterion``.

    A module without layers (an ExportedProgram's) is first rebuilt with them (:func:`layered`).  Raises
    :class:`TechniqueNotApplicableError` when that fails or leaves nothing to prune.
    """
    model = copy.deepcopy(prunable_form(module, example_args, "structured")).eval()
    layers = [m for m in model.modules() if isinstance(m, PRUNABLE)]
    if not layers:
        raise TechniqueNotApplicableError(
            "structured pruning cannot apply: the model has no convolutions or matrix products, so it has no "
            "channels to remove; build it with --prune none (quantization still applies)"
        )
    heads = attention_heads(model)
    scorer = criteria.get(criterion)
    importance = scorer.make()
    ignored = output_layers(model, example_args)
    if set(layers) <= set(ignored):
        raise TechniqueNotApplicableError(
            "structured pruning cannot apply: every nn.Conv/nn.Linear layer produces a model output, so removing "
            "channels would change the output shape; use --prune unstructured instead."
        )
    pruner = tp.pruner.MetaPruner(
        model,
        example_args,
        importance=importance,
        pruning_ratio=sparsity,
        global_pruning=scope == "global",
        max_pruning_ratio=MAX_LAYER_RATIO,
        ignored_layers=ignored,
        num_heads=heads,
        prune_num_heads=bool(heads),
        prune_head_dims=not heads,
        head_pruning_ratio=sparsity,
    )
    _prepare_scores(model, scorer.needs, importance, data)
    pruner.step()
    model.zero_grad(set_to_none=True)
    _update_head_counts(model, pruner.num_heads)
    return model


def prune_unstructured(
    module: nn.Module, sparsity: float, scope: str = "global", example_args: tuple | None = None
) -> tuple[nn.Module, Masks]:
    """A copy of ``module`` with ``sparsity`` of its weight-matrix/kernel entries zeroed by magnitude, and the masks.

    A module whose weights are constants rather than parameters (TorchScript converted to an ExportedProgram) is
    first rebuilt with layers (:func:`layered`, which needs ``example_args``).
    """
    if example_args is not None:
        module = prunable_form(module, example_args, "unstructured")
    model = copy.deepcopy(module)
    targets = [(name, *_owner(model, name)) for name, _ in weight_matrices(model)]
    if not targets:
        raise TechniqueNotApplicableError(
            "unstructured pruning cannot apply: the model has no weight matrices or kernels"
        )
    if scope == "global":
        prune.global_unstructured([(owner, leaf) for _, owner, leaf in targets], prune.L1Unstructured, amount=sparsity)
    else:
        for _, owner, leaf in targets:
            prune.l1_unstructured(owner, leaf, amount=sparsity)
    masks = {}
    for name, owner, leaf in targets:
        masks[name] = getattr(owner, f"{leaf}_mask").detach().clone()
        prune.remove(owner, leaf)  # bakes weight_orig * mask into a plain parameter
    return model, Masks(masks)


def output_layers(model: nn.Module, example_args: tuple) -> list[nn.Module]:
    """The Conv/Linear layers whose result is returned as a model output (directly or through reshapes)."""
    produced: dict[int, nn.Module] = {}

    def hook(layer, _inputs, output):
        if isinstance(output, torch.Tensor):
            produced[output.untyped_storage().data_ptr()] = layer

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, PRUNABLE)]
    try:
        with torch.no_grad():
            result = model(*example_args)
    finally:
        for handle in handles:
            handle.remove()
    outputs = result if isinstance(result, (tuple, list)) else (result,)
    return [produced[o.untyped_storage().data_ptr()] for o in outputs if o.untyped_storage().data_ptr() in produced]


def _prepare_scores(model: nn.Module, needs: str, importance, data: SampleData) -> None:
    """Feed the criterion what it needs: gradients of the task loss, or activations, on the user's data."""
    if needs == "weights":
        return
    inputs, labels = tensors(data.take(0, min(len(data), MAX_SCORING_SAMPLES)))
    batches = range(0, len(inputs[0]), BATCH)
    if needs == "activations":
        with importance.recording(model), torch.no_grad():
            for i in batches:
                model(*(x[i : i + BATCH] for x in inputs))
        return
    model.zero_grad(set_to_none=True)
    for i in batches:
        output = first_output(model(*(x[i : i + BATCH] for x in inputs)))
        task_loss(output, None if labels is None else labels[i : i + BATCH]).backward()


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, leaf = name.rpartition(".")
    return (model.get_submodule(path) if path else model), leaf


def achieved_sparsity(masks: Masks) -> float:
    total = sum(m.numel() for m in masks.masks.values())
    return float(1 - sum(float(m.sum()) for m in masks.masks.values()) / max(total, 1)) if masks.masks else 0.0


def attention_heads(model: nn.Module) -> dict[nn.Linear, int]:
    """Query/key/value projections mapped to their module's head count (Torch-Pruning's ``num_heads``)."""
    heads: dict[nn.Linear, int] = {}
    for module, convention in attention_modules(model):
        count_ = getattr(module, convention.heads)
        heads.update({getattr(module, name): count_ for name in convention.projections})
    return heads


def _update_head_counts(model: nn.Module, remaining: dict[nn.Linear, int]) -> None:
    for module, convention in attention_modules(model):
        query = getattr(module, convention.projections[0])
        if query in remaining:
            convention.update(module, remaining[query])


__all__ = [
    "achieved_sparsity",
    "attention_heads",
    "count",
    "output_layers",
    "prune_structured",
    "prune_unstructured",
]
