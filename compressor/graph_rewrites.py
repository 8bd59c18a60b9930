"""Exact rewrites of an exported PyTorch graph before it is lowered to TFLite.

litert-torch lowers a padded max-pool to PADV2 (pad with the lowest float) + MAX_POOL_2D; PADV2 is outside the
Edge TPU's operator list (finding F7).  When the pool's input is provably non-negative (the output of a ReLU, a
ReLU6 or a clamp at a non-negative minimum) padding with zeros instead gives the same maximum: every pooling
window holds at least one real element (PyTorch refuses padding over half the kernel), and those are all >= 0.
:func:`unpad_max_pools` makes that rewrite (a zero PAD, then an unpadded pool), which litert-torch lowers to PAD
+ MAX_POOL_2D.  :func:`drop_noop_pads` removes pads of zero width (transformers' "same" padding emits them), which
litert-torch's layout pass cannot place once quantize/dequantize nodes sit around them.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["drop_noop_pads", "unpad_max_pools", "unpadded_pools"]


def unpadded_pools(module, sample_args: tuple):
    """``module``, or where it has padded max-pools over non-negative values, its export on ``sample_args`` with
    them rewritten (:func:`unpad_max_pools`); the module itself when it cannot be exported here (the converter
    will say why)."""
    import torch

    try:
        graph = torch.export.export(module, sample_args).module()
    except Exception:  # noqa: BLE001 - the conversion proper reports export failures
        return module
    return graph if unpad_max_pools(graph) else module


def unpad_max_pools(graph_module) -> int:
    """Rewrite, in place, every padded 2-D max-pool of ``graph_module`` whose input is non-negative into a zero
    pad followed by an unpadded pool; return how many were rewritten."""
    import torch

    aten = torch.ops.aten
    count = 0
    for node in list(graph_module.graph.nodes):
        if node.op != "call_function" or node.target not in (
            aten.max_pool2d.default,
            aten.max_pool2d_with_indices.default,
        ):
            continue
        source, kernel, stride, padding, dilation, ceil_mode = _pool_args(node)
        if not any(padding) or ceil_mode or not _non_negative(source) or _uses_indices(node):
            continue
        top, left = padding
        with graph_module.graph.inserting_before(node):
            padded = graph_module.graph.call_function(
                aten.constant_pad_nd.default, (source, [left, left, top, top], 0.0)
            )
        node.args = (padded, kernel, stride, [0, 0], dilation, False)
        node.kwargs = {}
        count += 1
    if count:
        graph_module.graph.lint()
        graph_module.recompile()
    return count


def drop_noop_pads(graph_module) -> int:
    """Remove, in place, constant pads of zero width on every side; return how many were removed."""
    import torch

    aten = torch.ops.aten
    count = 0
    for node in list(graph_module.graph.nodes):
        if node.op != "call_function" or node.target not in (aten.pad.default, aten.constant_pad_nd.default):
            continue
        widths = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad", ())
        if _all_zero(widths):
            node.replace_all_uses_with(node.args[0])
            graph_module.graph.erase_node(node)
            count += 1
    if count:
        graph_module.graph.lint()
        graph_module.recompile()
    return count


def _pool_args(node) -> tuple:
    defaults: tuple = (None, None, [], [0, 0], [1, 1], False)
    given = list(node.args) + [None] * (len(defaults) - len(node.args))
    names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode")
    values = [node.kwargs.get(n, g) if g is None else g for n, g in zip(names, given)]
    values = [d if v is None else v for v, d in zip(values, defaults)]
    source, kernel, stride, padding, dilation, ceil_mode = values
    padding = list(padding) * 2 if len(padding) == 1 else list(padding)
    return source, kernel, stride, padding, dilation, bool(ceil_mode)


def _non_negative(node) -> bool:
    """Whether ``node``'s values are >= 0 by construction (ReLU, ReLU6 / hardtanh at min >= 0, clamp at min >= 0)."""
    import torch

    aten = torch.ops.aten
    if getattr(node, "op", None) != "call_function":
        return False
    if node.target in (aten.relu.default, aten.relu_.default, aten.relu6.default):
        return True
    if node.target in (aten.hardtanh.default, aten.hardtanh_.default):
        low = node.args[1] if len(node.args) > 1 else node.kwargs.get("min_val", -1.0)
        return float(low) >= 0
    if node.target in (aten.clamp.default, aten.clamp_.default, aten.clamp_min.default):
        low = node.args[1] if len(node.args) > 1 else node.kwargs.get("min")
        return low is not None and float(low) >= 0
    return False


def _uses_indices(node) -> bool:
    """Whether the graph reads a ``max_pool2d_with_indices`` node's indices, which index the padded input after the
    rewrite (values stay exact; indices would not)."""
    import operator

    return any(user.target is operator.getitem and user.args[1] == 1 for user in node.users)


def _all_zero(widths: Iterable) -> bool:
    return all(isinstance(w, int) and w == 0 for w in widths)
