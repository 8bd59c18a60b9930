"""Exact rewrites of an exported PyTorch graph before it is lowered to TFLite.

litert-torch lowers a padded max-pool to PADV2 (pad with the lowest float) + MAX_POOL_2D; PADV2 is outside the
Edge TPU's operator list (finding F7).  When the pool's input is provably non-negative (the output of a ReLU, a
ReLU6 or a clamp at a non-negative minimum) padding with zeros instead gives the same maximum: every pooling
window holds at least one real element (PyTorch refuses padding over half the kernel), and those are all >= 0.
:func:`unpad_max_pools` makes that rewrite (a zero PAD, then an unpadded pool), which litert-torch lowers to PAD
+ MAX_POOL_2D.  :func:`drop_noop_pads` removes pads of zero width (transformers' "same" padding emits them), which
litert-torch's layout pass cannot place once quantize/dequantize nodes sit around them.

litert-torch lowers a clamp to [0, 1] (a hard sigmoid: onnx2torch's ``HardSigmoid``, ``torch.clip(x * a + b, 0,
1)``) to RELU_0_TO_1, which the Edge TPU's operator list lacks (finding F12, the PP-OCR direction classifier).
:func:`unit_clamps_as_relu6` rewrites each as ``relu6(6 * y) / 6``, the same values up to float rounding, which
litert-torch lowers to a MUL with a fused RELU6 and a MUL (on the list).  A division by a square root (a LayerNorm written out
by an ONNX exporter: ``(x - mean) / sqrt(var + eps)``) would lower to SQRT and DIV, neither on the list;
:func:`divisions_by_roots_as_rsqrt` rewrites it as ``x * rsqrt(v)`` (RSQRT and MUL are).

Attention multiplies two activations (``q @ k^T``, ``weights @ v``), which litert-torch lowers to BATCH_MATMUL:
the Edge TPU has no such op (finding F12, the PP-OCRv4 recogniser).  :func:`activation_matmuls_as_mul_sum` writes
each as a broadcast product summed over the shared axis (MUL and SUM, both on the list).  Unlike the rewrites above
it costs time and memory (a ``[B, M, K, N]`` intermediate), so it is made only for targets whose operator list
lacks BATCH_MATMUL (:data:`REWRITES_FOR_MISSING_OPS`).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "activation_matmuls_as_mul_sum",
    "divisions_by_roots_as_rsqrt",
    "drop_noop_pads",
    "rewritten_for_tflite",
    "unit_clamps_as_relu6",
    "unpad_max_pools",
]


def rewritten_for_tflite(module, sample_args: tuple, op_allowlist: Iterable[str] = ()):
    """``module``, or where it has padded max-pools over non-negative values, clamps to [0, 1] or divisions by
    square roots, its export on ``sample_args`` with them rewritten (:data:`EDGE_TPU_REWRITES`), and, when
    ``op_allowlist`` (the target's TFLite operators; empty: any) lacks one that :data:`REWRITES_FOR_MISSING_OPS`
    avoids, that rewrite too; the module itself when it cannot be exported here (the converter will say why)."""
    import torch

    allowed = set(op_allowlist)
    rewrites = [*EDGE_TPU_REWRITES, *(r for op, r in REWRITES_FOR_MISSING_OPS.items() if allowed and op not in allowed)]
    try:
        graph = torch.export.export(module, sample_args).module()
    except Exception:  # noqa: BLE001 - the conversion proper reports export failures
        return module
    return graph if sum(rewrite(graph) for rewrite in rewrites) else module


def _each(graph_module, targets: tuple, rewrite) -> int:
    """Call ``rewrite(graph, node)`` on every call of one of ``targets`` in ``graph_module``'s graph (it returns
    whether it changed the graph); then check and recompile the graph if anything changed; return how many."""
    graph = graph_module.graph
    count = 0
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target in targets and rewrite(graph, node):
            count += 1
    if count:
        graph.lint()
        graph_module.recompile()
    return count


def unpad_max_pools(graph_module) -> int:
    """Rewrite, in place, every padded 2-D max-pool of ``graph_module`` whose input is non-negative into a zero
    pad followed by an unpadded pool; return how many were rewritten."""
    import torch

    aten = torch.ops.aten

    def rewrite(graph, node) -> bool:
        source, kernel, stride, padding, dilation, ceil_mode = _pool_args(node)
        if not any(padding) or ceil_mode or not _non_negative(source) or _uses_indices(node):
            return False
        top, left = padding
        with graph.inserting_before(node):
            padded = graph.call_function(aten.constant_pad_nd.default, (source, [left, left, top, top], 0.0))
        node.args = (padded, kernel, stride, [0, 0], dilation, False)
        node.kwargs = {}
        return True

    return _each(graph_module, (aten.max_pool2d.default, aten.max_pool2d_with_indices.default), rewrite)


def unit_clamps_as_relu6(graph_module) -> int:
    """Rewrite, in place, every clamp of a float tensor to [0, 1] into ``relu6(6 * y) / 6``; return how many."""
    import torch

    aten = torch.ops.aten

    def rewrite(graph, node) -> bool:
        low = node.args[1] if len(node.args) > 1 else node.kwargs.get("min")
        high = node.args[2] if len(node.args) > 2 else node.kwargs.get("max")
        value = node.args[0].meta.get("val") if hasattr(node.args[0], "meta") else None
        if not (_is_number(low, 0.0) and _is_number(high, 1.0)) or value is None or not value.dtype.is_floating_point:
            return False
        with graph.inserting_before(node):
            scaled = graph.call_function(aten.mul.Tensor, (node.args[0], 6.0))
            clipped = graph.call_function(aten.hardtanh.default, (scaled, 0.0, 6.0))
            unit = graph.call_function(aten.mul.Tensor, (clipped, 1.0 / 6.0))
        node.replace_all_uses_with(unit)
        graph.erase_node(node)
        return True

    return _each(graph_module, (aten.clamp.default, aten.clip.default), rewrite)


def divisions_by_roots_as_rsqrt(graph_module) -> int:
    """Rewrite, in place, every ``a / sqrt(b)`` whose square root has no other use into ``a * rsqrt(b)``; return
    how many."""
    import torch

    aten = torch.ops.aten

    def rewrite(graph, node) -> bool:
        if len(node.args) != 2 or node.kwargs:
            return False
        root = node.args[1]
        if getattr(root, "target", None) is not aten.sqrt.default or len(root.users) != 1:
            return False
        with graph.inserting_before(node):
            inverse = graph.call_function(aten.rsqrt.default, (root.args[0],))
            product = graph.call_function(aten.mul.Tensor, (node.args[0], inverse))
        node.replace_all_uses_with(product)
        graph.erase_node(node)
        graph.erase_node(root)
        return True

    return _each(graph_module, (aten.div.Tensor,), rewrite)


def activation_matmuls_as_mul_sum(graph_module) -> int:
    """Rewrite, in place, every batched matrix product of two activations (neither operand a parameter) into
    ``sum(a[:, :, :, None] * b[:, None, :, :], axis=2)`` over the flattened leading axes; return how many."""
    import math

    import torch

    aten = torch.ops.aten

    def rewrite(graph, node) -> bool:
        a, b = node.args[:2]
        shapes = [tuple(getattr(t, "meta", {}).get("val", torch.empty(0)).shape) for t in (a, b)]
        if _constant(a) or _constant(b) or len(shapes[0]) < 3 or shapes[0][:-2] != shapes[1][:-2]:
            return False
        (*lead, m, k), (*_, k2, n) = shapes
        if k != k2:
            return False
        batch = math.prod(lead)
        with graph.inserting_before(node):
            left = graph.call_function(aten.reshape.default, (a, [batch, m, k, 1]))
            right = graph.call_function(aten.reshape.default, (b, [batch, 1, k, n]))
            product = graph.call_function(aten.mul.Tensor, (left, right))
            summed = graph.call_function(aten.sum.dim_IntList, (product, [2]))
            out = graph.call_function(aten.reshape.default, (summed, [*lead, m, n]))
        node.replace_all_uses_with(out)
        graph.erase_node(node)
        return True

    return _each(graph_module, (aten.matmul.default, aten.bmm.default), rewrite)


_VIEWS = ("permute", "t", "transpose", "view", "reshape", "expand", "unsqueeze", "squeeze", "_to_copy", "clone")


def _constant(node) -> bool:
    """Whether ``node`` is a parameter or buffer, or a view of one (a weight behind its transpose)."""
    while getattr(node, "op", None) == "call_function" and getattr(node.target, "_opname", "") in _VIEWS:
        node = node.args[0]
    return getattr(node, "op", None) == "get_attr"


def _is_number(value, expected: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value) == expected


# exact rewrites (up to float rounding) that keep ops outside the Edge TPU's list out of litert-torch's output
EDGE_TPU_REWRITES = (unpad_max_pools, unit_clamps_as_relu6, divisions_by_roots_as_rsqrt)
# rewrites that cost time or memory, made only for targets whose operator list lacks the op they avoid
REWRITES_FOR_MISSING_OPS = {"BATCH_MATMUL": activation_matmuls_as_mul_sum}


def drop_noop_pads(graph_module) -> int:
    """Remove, in place, constant pads of zero width on every side; return how many were removed."""
    import torch

    aten = torch.ops.aten

    def rewrite(graph, node) -> bool:
        widths = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad", ())
        if not _all_zero(widths):
            return False
        node.replace_all_uses_with(node.args[0])
        graph.erase_node(node)
        return True

    return _each(graph_module, (aten.pad.default, aten.constant_pad_nd.default), rewrite)


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
