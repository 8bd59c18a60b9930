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
import re

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.utils import prune

from compressor.data import SampleData
from compressor.errors import TechniqueNotApplicableError
from compressor.finetune import BATCH, first_output, task_loss, tensors
from compressor.importance import criteria

PRUNABLE = (nn.modules.conv._ConvNd, nn.Linear)  # noqa: SLF001
HEAD_ATTRIBUTES = ("num_heads", "num_attention_heads")
QKV_NAMES = (("q", "k", "v"), ("query", "key", "value"), ("q_proj", "k_proj", "v_proj"))
MAX_LAYER_RATIO = 0.9  # never empty a layer entirely, even in global ranking
MAX_SCORING_SAMPLES = 512
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


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
    for layer in layers:
        layer.__dict__.pop("_edgeforge_entropy", None)
    _update_head_counts(model, pruner.num_heads)
    return model


def prune_unstructured(
    module: nn.Module, sparsity: float, scope: str = "global", example_args: tuple | None = None
) -> tuple[nn.Module, dict[str, torch.Tensor]]:
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
    return model, masks


def prunable_form(module: nn.Module, example_args: tuple, kind: str, technique: str | None = None) -> nn.Module:
    """The form of ``module`` that ``kind`` ("structured" or "unstructured") pruning works on: ``module`` itself
    when it has what that kind removes (layers; weight parameters), else :func:`layered`.  Cheap when ``module``
    already is in that form, so a search over sparsities computes it once up front.  ``technique`` names what
    needs that form in a refusal (default: ``kind`` pruning)."""
    if kind == "unstructured" and any(weight_matrices(module)):
        return module
    return layered(module, example_args, technique or f"{kind} pruning")


def layered(module: nn.Module, example_args: tuple, technique: str = "structured pruning") -> nn.Module:
    """``module`` itself when it has nn.Conv/nn.Linear layers, otherwise the same function rebuilt with them.

    An ExportedProgram's module (a .pt2 file, or TorchScript converted to one) holds its layers as graph
    operations, which have no channels to remove.  Exported to ONNX and read back with onnx2torch (the route
    submitted ONNX files take), each convolution and matrix product is an nn.Conv/nn.Linear layer again, with
    BatchNorm folded in; a Reshape to a constant ``[batch, features]`` becomes a flatten, so that pruning may
    change the feature count.  The rebuilt module must compute what ``module`` computes.
    """
    if any(isinstance(m, PRUNABLE) for m in module.modules()):
        return module
    return rebuilt_with_layers(module, example_args, technique)


def rebuilt_with_layers(
    module: nn.Module,
    example_args: tuple,
    technique: str,
    why_needed: str = "the model has no nn.Conv/nn.Linear layers",
) -> nn.Module:
    """``module`` exported to ONNX and read back with onnx2torch (see :func:`layered`), checked to compute the same."""
    import tempfile
    from pathlib import Path

    import onnx

    from compressor.loaders import onnx_to_torch
    from compressor.native_output import captured
    from compressor.passes.convert_onnx_pass import export_torch

    refusal = (
        f"{technique} cannot apply: {why_needed} and the model could not be rebuilt "
        "with nn.Conv/nn.Linear layers through ONNX ({why}). Compress the nn.Module itself through the Python API: "
        "compressor.api.compress(module, profile, out, example_inputs=...)"
        + (
            "; or use --prune unstructured on an ExportedProgram (.pt2) of it."
            if technique.startswith("structured")
            else "."
        )
    )
    try:
        with tempfile.TemporaryDirectory(prefix="edgeforge-layered-") as work:
            path = Path(work) / "model.onnx"
            with captured(Path(work) / "export.log"):
                export_torch(module, example_args, path, dynamic_batch=True)
            rebuilt = onnx_to_torch(onnx.load(str(path)), None)
        _flatten_constant_reshapes(rebuilt, example_args)
    except TechniqueNotApplicableError as exc:
        raise TechniqueNotApplicableError(refusal.format(why=str(exc).split(";")[0])) from None
    except Exception as exc:  # noqa: BLE001 - any exporter failure means this route is closed for this model
        first_line = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise TechniqueNotApplicableError(refusal.format(why=f"{type(exc).__name__}: {first_line}")) from None
    with torch.no_grad():
        expected, got = first_output(module(*example_args)), first_output(rebuilt(*example_args))
    if expected.shape != got.shape or not torch.allclose(expected, got, rtol=1e-3, atol=1e-4):
        raise TechniqueNotApplicableError(refusal.format(why="the rebuilt module computes something else"))
    return rebuilt


def _flatten_constant_reshapes(gm: torch.fx.GraphModule, example_args: tuple) -> None:
    """Replace each Reshape to a constant ``[batch or -1, N]`` of a tensor with N features per sample by a flatten."""
    from torch.fx.passes.shape_prop import ShapeProp

    ShapeProp(gm).propagate(*example_args)
    changed = False
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or type(gm.get_submodule(node.target)).__name__ != "OnnxReshape":
            continue
        source, shape = node.args[0], node.args[1]
        if shape.op != "get_attr" or "tensor_meta" not in source.meta:
            continue
        target = gm.get_submodule(shape.target.rpartition(".")[0]) if "." in shape.target else gm
        value = getattr(target, shape.target.rpartition(".")[2]).tolist()
        dims = tuple(source.meta["tensor_meta"].shape)
        batch = dims[0]
        if len(value) != 2 or value[0] not in (-1, 0, batch) or value[1] != int(torch.tensor(dims[1:]).prod()):
            continue
        with gm.graph.inserting_before(node):
            flat = gm.graph.call_function(torch.flatten, (source, 1))
        node.replace_all_uses_with(flat)
        gm.graph.erase_node(node)
        changed = True
    if changed:
        gm.graph.eliminate_dead_code()
        gm.delete_all_unused_submodules()
        gm.recompile()


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


def attention_heads(model: nn.Module) -> dict[nn.Linear, int]:
    """Query/key/value projections mapped to their module's head count (Torch-Pruning's ``num_heads``)."""
    heads: dict[nn.Linear, int] = {}
    for module in model.modules():
        count_ = next((getattr(module, a) for a in HEAD_ATTRIBUTES if isinstance(getattr(module, a, None), int)), None)
        if count_ is None:
            continue
        for names in QKV_NAMES:
            projections = [getattr(module, n, None) for n in names]
            if all(isinstance(p, nn.Linear) for p in projections):
                heads.update({p: count_ for p in projections})
    return heads


def _update_head_counts(model: nn.Module, remaining: dict[nn.Linear, int]) -> None:
    for module in model.modules():
        for names in QKV_NAMES:
            query = getattr(module, names[0], None)
            if query in remaining:
                for attribute in HEAD_ATTRIBUTES:
                    if isinstance(getattr(module, attribute, None), int):
                        setattr(module, attribute, remaining[query])
                if isinstance(getattr(module, "all_head_size", None), int):
                    module.all_head_size = query.out_features


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


def has_batch_norm(model: nn.Module) -> bool:
    """Whether ``model`` normalizes batches: BatchNorm layers, or batch-norm operations in an exported graph."""
    if any(isinstance(m, BATCH_NORMS) for m in model.modules()):
        return True
    graph = getattr(model, "graph", None)
    return graph is not None and any(
        "batch_norm" in str(node.target) for node in graph.nodes if node.op == "call_function"
    )


def weight_matrices(model: nn.Module):
    return ((name, p) for name, p in model.named_parameters() if p.dim() > 1 and p.is_floating_point())


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, leaf = name.rpartition(".")
    return (model.get_submodule(path) if path else model), leaf


def achieved_sparsity(masks: dict[str, torch.Tensor]) -> float:
    total = sum(m.numel() for m in masks.values())
    return float(1 - sum(float(m.sum()) for m in masks.values()) / max(total, 1)) if masks else 0.0


__all__ = [
    "achieved_sparsity",
    "attention_heads",
    "count",
    "has_batch_norm",
    "layered",
    "output_layers",
    "prunable_form",
    "prune_structured",
    "prune_unstructured",
    "rebuilt_with_layers",
    "weight_matrices",
]
