"""Whole-block pruning: replace the least important residual blocks by identity.

The rule for a *removable block*, applied to every submodule except the root:

1. its own ``forward`` (traced one level deep with ``torch.fx``, children kept
   as calls) adds its input tensor to something: a skip connection, as in
   ``relu(x + f(x))`` (a residual CNN block) or ``norm(x + attention(x))``
   (a transformer encoder block);
2. on the example inputs it is called with one tensor and returns one tensor
   of that same shape and dtype, so identity is a drop-in replacement;
3. it holds parameters, and no other removable block contains it (the
   outermost residual module is the block).

Containers such as ``nn.Sequential`` fail rule 1 (they pass their input to a
child, they do not add it), so they are never removed themselves.  Blocks are
ranked on the user's data by how much bypassing each changes the model's
output (1 - mean cosine similarity between outputs with and without it); the
least important are replaced by ``nn.Identity``, which removes their
parameters and MACs while the network stays valid.
"""

from __future__ import annotations

import copy
import operator

import torch
from torch import fx, nn

from compressor.data import SampleData
from compressor.errors import TechniqueNotApplicableError
from compressor.finetune import BATCH, tensors

ADD_TARGETS = (operator.add, operator.iadd, torch.add)
ADD_METHODS = ("add", "add_")
MAX_SCORING_SAMPLES = 256


def removable_blocks(model: nn.Module, example_args: tuple) -> list[str]:
    """Names of the submodules of ``model`` that follow the module rule above, in model order."""
    shapes = _call_shapes(model, example_args)
    found: list[str] = []
    for name, module in model.named_modules():
        if not name or name not in shapes or not shapes[name]:
            continue
        if any(name.startswith(f"{outer}.") for outer in found):
            continue
        if next(module.parameters(), None) is not None and _adds_its_input(module):
            found.append(name)
    return found


def block_importance(model: nn.Module, blocks: list[str], data: SampleData) -> dict[str, float]:
    """For each block: 1 - mean cosine between the model's outputs with the block bypassed and as it is."""
    inputs, _ = tensors(data.take(0, min(len(data), MAX_SCORING_SAMPLES)))
    model.eval()
    reference = _outputs(model, inputs)
    scores = {}
    for name in blocks:
        handle = model.get_submodule(name).register_forward_hook(lambda _m, args, _out: args[0])
        try:
            bypassed = _outputs(model, inputs)
        finally:
            handle.remove()
        cosine = nn.functional.cosine_similarity(bypassed, reference, dim=1, eps=1e-8).mean()
        scores[name] = round(float(1 - cosine), 6)
    return scores


def prune_blocks(module: nn.Module, example_args: tuple, fraction: float, data: SampleData) -> tuple[nn.Module, dict]:
    """A copy of ``module`` with ``fraction`` of its removable blocks (at least one) replaced by identity.

    Returns the copy and what was done (blocks found, their importance, the ones removed).  Raises
    :class:`TechniqueNotApplicableError` when the model has no removable block.
    """
    model = copy.deepcopy(module).eval()
    blocks = removable_blocks(model, example_args)
    if not blocks:
        raise TechniqueNotApplicableError(
            "block pruning cannot apply: the model has no residual block (a submodule that adds its input to its "
            "output, with input and output of the same shape), so no block can be replaced by identity without "
            "breaking the network. Use prune='structured' to remove channels/filters, or prune='unstructured'; "
            "for a file-based model (.pt2/.pt/.onnx, whose modules are flattened) pass the nn.Module itself "
            "through the Python API: compressor.api.compress(module, profile, out, example_inputs=...)."
        )
    scores = block_importance(model, blocks, data)
    removed = sorted(blocks, key=lambda n: (scores[n], blocks.index(n)))[: max(1, round(fraction * len(blocks)))]
    for name in removed:
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, nn.Identity())
    return model, {"blocks": blocks, "importance": scores, "removed": [n for n in blocks if n in removed]}


def _call_shapes(model: nn.Module, example_args: tuple) -> dict[str, bool]:
    """Submodule name -> whether every call took one tensor and returned one of the same shape and dtype."""
    same: dict[str, bool] = {}
    names = {m: n for n, m in model.named_modules()}

    def hook(module, args, output):
        ok = (
            len(args) == 1
            and isinstance(args[0], torch.Tensor)
            and isinstance(output, torch.Tensor)
            and output.shape == args[0].shape
            and output.dtype == args[0].dtype
        )
        name = names[module]
        same[name] = same.get(name, True) and ok

    handles = [m.register_forward_hook(hook) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            model(*example_args)
    finally:
        for handle in handles:
            handle.remove()
    return same


class _OneLevelTracer(fx.Tracer):
    """Traces a module's own forward only: every child module stays a single call."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def _adds_its_input(module: nn.Module) -> bool:
    """Whether ``module.forward`` adds its (single) input tensor to something: a skip connection."""
    try:
        graph = _OneLevelTracer().trace(module)
    except Exception:  # noqa: BLE001 - untraceable forward (data-dependent control flow...): not a block we can prove
        return False
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        return False
    for node in placeholders[0].users:
        is_add = (node.op == "call_function" and node.target in ADD_TARGETS) or (
            node.op == "call_method" and node.target in ADD_METHODS
        )
        if is_add:
            return True
    return False


@torch.no_grad()
def _outputs(model: nn.Module, inputs: list[torch.Tensor]) -> torch.Tensor:
    from compressor.finetune import first_output

    chunks = [first_output(model(*(x[i : i + BATCH] for x in inputs))) for i in range(0, len(inputs[0]), BATCH)]
    return torch.cat(chunks).flatten(1).float()


__all__ = ["block_importance", "prune_blocks", "removable_blocks"]
