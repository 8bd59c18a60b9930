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

A softmax over an axis of size 1 is 1.0 everywhere (MobileViT's attention once its feature map is a single patch),
yet litert-torch lowers it as REDUCE_MAX, SUB, EXP and DIV; :func:`unit_softmaxes_as_ones` makes it the constant.

Attention multiplies two activations (``q @ k^T``, ``weights @ v``), which litert-torch lowers to BATCH_MATMUL:
the Edge TPU has no such op (finding F12, the PP-OCRv4 recogniser).  :func:`activation_matmuls_as_mul_sum` writes
each as a broadcast product summed over the shared axis (MUL and SUM, both on the list).  Unlike the rewrites above
it costs time and memory (a ``[B, M, K, N]`` intermediate), so it is made only for targets whose operator list
lacks BATCH_MATMUL (:data:`REWRITES_FOR_MISSING_OPS`); so is :func:`gelus_as_sigmoid` for targets without GELU
(transformers' feed-forward layers), an approximation within 5e-4 of the exact GELU, far under int8's own error.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "activation_matmuls_as_mul_sum",
    "divisions_by_roots_as_rsqrt",
    "drop_noop_pads",
    "gelus_as_sigmoid",
    "rewritten_for_tflite",
    "unit_clamps_as_relu6",
    "unit_softmaxes_as_ones",
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
        graph.eliminate_dead_code()
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
    ``sum(a[:, :, :, None] * b[:, None, :, :], axis=2)`` over the flattened leading axes, and every non-causal
    ``scaled_dot_product_attention`` without a mask (or with one true everywhere, :func:`_always_true`) into
    ``softmax(q k^T * scale) v`` with its two products so written; return how many."""
    import torch

    aten = torch.ops.aten

    def rewrite(graph, node) -> bool:
        if node.target is aten.scaled_dot_product_attention.default:
            return _attention(graph, node)
        a, b = node.args[:2]
        if _constant(a) or _constant(b) or not _batched(_shape(a), _shape(b)):
            return False
        with graph.inserting_before(node):
            out = _mul_sum(graph, a, b, _shape(a), _shape(b))
        node.replace_all_uses_with(out)
        graph.erase_node(node)
        return True

    targets = (aten.matmul.default, aten.bmm.default, aten.scaled_dot_product_attention.default)
    return _each(graph_module, targets, rewrite)


def _attention(graph, node) -> bool:
    import torch

    aten = torch.ops.aten
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
    given = dict(zip(names, node.args)) | dict(node.kwargs)
    q, k, v = given["query"], given["key"], given["value"]
    if (
        (given.get("attn_mask") is not None and not _always_true(graph, given["attn_mask"]))
        or given.get("is_causal")
        or given.get("dropout_p")
        or given.get("enable_gqa")
    ):
        return False
    (*lead, m, d), kt_shape, v_shape = _shape(q), _shape(k)[:-2] + _shape(k)[-2:][::-1], _shape(v)
    if not (_batched(_shape(q), kt_shape) and _batched((*lead, m, kt_shape[-1]), v_shape)):
        return False
    scale = given.get("scale") or 1.0 / d**0.5
    with graph.inserting_before(node):
        kt = graph.call_function(aten.transpose.int, (k, -2, -1))
        scores = graph.call_function(aten.mul.Tensor, (_mul_sum(graph, q, kt, _shape(q), kt_shape), float(scale)))
        weights = graph.call_function(aten.softmax.int, (scores, -1))
        out = _mul_sum(graph, weights, v, (*lead, m, kt_shape[-1]), v_shape)
    node.replace_all_uses_with(out)
    graph.erase_node(node)
    return True


def _always_true(graph, mask) -> bool:
    """Whether ``mask`` is a boolean tensor computed from constants alone (no model input) and true everywhere:
    transformers' exports spell "attend to every position" so (``arange(n) >= 0`` broadcast), which masks nothing."""
    import torch

    value = getattr(mask, "meta", {}).get("val")
    if value is None or value.dtype is not torch.bool:
        return False
    needed, stack = {}, [mask]
    while stack:  # the nodes the mask is computed from
        node = stack.pop()
        if node.name in needed:
            continue
        if node.op == "placeholder":
            return False
        needed[node.name] = node
        stack.extend(node.all_input_nodes)
    sub = torch.fx.Graph()
    copies: dict = {}
    for node in graph.nodes:  # in graph order, so each copy's inputs exist
        if node.name in needed:
            copies[node] = sub.node_copy(node, lambda n: copies[n])
    sub.output(copies[mask])
    try:
        return bool(torch.fx.GraphModule(graph.owning_module, sub)().all())
    except Exception:  # noqa: BLE001 - a mask this cannot evaluate is kept as it is
        return False


def _shape(node) -> tuple:
    value = getattr(node, "meta", {}).get("val")
    return tuple(value.shape) if value is not None else ()


def _batched(a: tuple, b: tuple) -> bool:
    """Whether ``a @ b`` is a batched product with the same leading axes (rank 3 and up) and matching inner ones."""
    return len(a) >= 3 and len(a) == len(b) and a[:-2] == b[:-2] and a[-1] == b[-2]


def _mul_sum(graph, a, b, a_shape: tuple, b_shape: tuple):
    """Nodes computing ``a @ b`` as a broadcast MUL summed over the shared axis; returns the last one."""
    import math

    import torch

    aten = torch.ops.aten
    (*lead, m, k), n = a_shape, b_shape[-1]
    batch = math.prod(lead)
    left = graph.call_function(aten.reshape.default, (a, [batch, m, k, 1]))
    right = graph.call_function(aten.reshape.default, (b, [batch, 1, k, n]))
    product = graph.call_function(aten.mul.Tensor, (left, right))
    summed = graph.call_function(aten.sum.dim_IntList, (product, [2]))
    return graph.call_function(aten.reshape.default, (summed, [*lead, m, n]))


def gelus_as_sigmoid(graph_module) -> int:
    """Rewrite, in place, every GELU into its tanh form ``0.5 x (1 + tanh(z))``, ``z = sqrt(2 / pi) (x + 0.044715
    x^3)``, written as ``x * sigmoid(2 z)`` (the same function; MUL, ADD and LOGISTIC, where the tanh spelling would
    be fused back into GELU by the TFLite converter): within 5e-4 of the exact GELU, the same as
    ``approximate='tanh'``; return how many."""
    import math

    import torch

    aten = torch.ops.aten

    def rewrite(graph, node) -> bool:
        x = node.args[0]
        with graph.inserting_before(node):
            cube = graph.call_function(aten.mul.Tensor, (graph.call_function(aten.mul.Tensor, (x, x)), x))
            inner = graph.call_function(aten.add.Tensor, (x, graph.call_function(aten.mul.Tensor, (cube, 0.044715))))
            scaled = graph.call_function(aten.mul.Tensor, (inner, 2 * math.sqrt(2 / math.pi)))
            out = graph.call_function(aten.mul.Tensor, (x, graph.call_function(aten.sigmoid.default, (scaled,))))
        node.replace_all_uses_with(out)
        graph.erase_node(node)
        return True

    return _each(graph_module, (aten.gelu.default,), rewrite)


_VIEWS = ("permute", "t", "transpose", "view", "reshape", "expand", "unsqueeze", "squeeze", "_to_copy", "clone")


def _constant(node) -> bool:
    """Whether ``node`` is a parameter or buffer, or a view of one (a weight behind its transpose)."""
    while getattr(node, "op", None) == "call_function" and getattr(node.target, "_opname", "") in _VIEWS:
        node = node.args[0]
    return getattr(node, "op", None) == "get_attr"


def _is_number(value, expected: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value) == expected


def unit_softmaxes_as_ones(graph_module) -> int:
    """Replace, in place, every softmax over an axis of size 1 (exactly 1.0 everywhere: MobileViT's attention over a
    single patch) by a constant of ones, which litert-torch would otherwise lower as REDUCE_MAX, SUB, EXP and DIV
    (the last two outside the Edge TPU's list), and the product of such weights ``[..., 1, 1]`` with ``v`` by ``v``
    itself (the converter rejects a batched product, or a broadcast MUL, with a constant of ones there; weights of
    several rows over one position are left as they are); return how many."""
    import torch

    aten = torch.ops.aten

    def rewrite(graph, node) -> bool:
        value = node.meta.get("val")
        shape = _shape(node.args[0])
        if value is None or not shape or not all(isinstance(d, int) for d in shape) or shape[node.args[1]] != 1:
            return False
        products = [u for u in node.users if u.target in (aten.matmul.default, aten.bmm.default) and u.args[0] is node]
        if products and (len(shape) < 2 or shape[-2] != 1):  # weights [..., m > 1, 1] @ v: kept (see the docstring)
            return False
        for product in products:  # [..., 1, 1] ones @ v [..., 1, n] is v
            product.replace_all_uses_with(product.args[1])
            graph.erase_node(product)
        if node.users:
            with graph.inserting_before(node):
                ones = graph.call_function(aten.full.default, (list(shape), 1.0), {"dtype": value.dtype})
            ones.meta["val"] = value
            node.replace_all_uses_with(ones)
        graph.erase_node(node)
        return True

    return _each(graph_module, (aten.softmax.int,), rewrite)


# exact rewrites (up to float rounding) that keep ops outside the Edge TPU's list out of litert-torch's output
EDGE_TPU_REWRITES = (unpad_max_pools, unit_clamps_as_relu6, divisions_by_roots_as_rsqrt, unit_softmaxes_as_ones)
# rewrites that cost time or memory, made only for targets whose operator list lacks the op they avoid
REWRITES_FOR_MISSING_OPS = {"BATCH_MATMUL": activation_matmuls_as_mul_sum, "GELU": gelus_as_sigmoid}


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
