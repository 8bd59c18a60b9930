"""A model's *layered* form: real ``nn.Conv``/``nn.Linear`` layers, which pruning and clustering work on.

An ExportedProgram's module (a .pt2 file, or TorchScript converted to one) holds its layers as graph operations,
with weights as constants.  Exported to ONNX and read back with onnx2torch (the route submitted ONNX files take),
each convolution and matrix product is an ``nn.Conv``/``nn.Linear`` layer again, with BatchNorm folded in; a
Reshape to a constant ``[batch, features]`` becomes a flatten, so that pruning may change the feature count.  The
rebuilt module must compute what the original computes.
"""

from __future__ import annotations

import copy
import re

import torch
from torch import nn

from compressor.errors import TechniqueNotApplicableError
from compressor.finetune import first_output

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


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

    A module onnx2torch made (an ONNX source) has layers, but its flattens may be Reshapes to a constant
    ``[batch, features]``: a copy with those made flattens is returned, so pruning may change the feature count.
    """
    if any(isinstance(m, PRUNABLE) for m in module.modules()):
        if isinstance(module, torch.fx.GraphModule) and _has_onnx_reshapes(module):
            module = copy.deepcopy(module)
            _flatten_constant_reshapes(module, example_args)
        return module
    return rebuilt_with_layers(module, example_args, technique)


def _reshape_classes() -> tuple[type, ...]:
    """onnx2torch's Reshape module and the static one our converter registers for constant shapes."""
    from compressor.onnx_converters import static_reshape_class
    from compressor.onnx_torch import onnx_reshape_class

    return onnx_reshape_class(), static_reshape_class()


def _has_onnx_reshapes(gm: torch.fx.GraphModule) -> bool:
    classes = _reshape_classes()
    return any(isinstance(m, classes) for m in gm.modules())


def _constant_reshape_target(gm: torch.fx.GraphModule, node) -> list[int] | None:
    """The constant target shape of a Reshape module call (either class), or None."""
    if node.op != "call_module":
        return None
    onnx_reshape, static_reshape = _reshape_classes()
    module = gm.get_submodule(node.target)
    if isinstance(module, static_reshape):
        return [int(d) for d in module.shape]  # type: ignore[union-attr]
    if not isinstance(module, onnx_reshape) or len(node.args) < 2 or node.args[1].op != "get_attr":
        return None
    target = node.args[1].target
    owner = gm.get_submodule(target.rpartition(".")[0]) if "." in target else gm
    return getattr(owner, target.rpartition(".")[2]).tolist()


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

    from compressor.native_output import captured
    from compressor.onnx_torch import onnx_to_torch
    from compressor.torch_export import export_torch

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
            rebuilt = onnx_to_torch(onnx.load(str(path)), None, normalise=False)
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
        value = _constant_reshape_target(gm, node)
        source = node.args[0] if node.args else None
        if value is None or source is None or "tensor_meta" not in source.meta:
            continue
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
