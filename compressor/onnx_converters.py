"""onnx2torch converters for operators it refuses, registered into its own converter registry.

onnx2torch 1.5 has no ``LSTM`` converter (silero-vad's ONNX files stop there) and refuses ``AveragePool`` with
asymmetric pads (Caffe2's Inception v1 in the ``onnx`` wheel: ``AvgPool with non symmetrical padding is not
implemented``). :func:`register` adds both, once per process, after which ``onnx2torch.convert`` reads such
graphs; each module computes what onnxruntime computes (tests/test_onnx_normalize.py compares them).

- ``LSTM`` (opsets 7 and 14): ``torch.nn.LSTM`` with the ONNX weights regrouped (ONNX gates i, o, f, c;
  PyTorch i, f, c, o), forward or bidirectional, optional initial states. ``layout=1`` (batch first: onnxruntime
  itself refuses it, so nothing could check it), reverse, peepholes, ``clip``, ``input_forget``, custom
  activations and ``sequence_lens`` are refused (``NotImplementedError``, as
  onnx2torch refuses what it lacks).
- ``AveragePool`` with asymmetric explicit pads: zero padding, then the pool; with ``count_include_pad=0`` the
  sum is divided by the number of real (unpadded) elements in each window, as ONNX specifies.
- ``ConvTranspose`` with asymmetric pads (what ``auto_pad=SAME_*`` becomes on odd sizes): the transposed
  convolution unpadded, then the output cropped by the pads, which is what ONNX's pads mean there.
- ``Reshape`` to a constant shape: the shape as a Python list. onnx2torch's module keeps it as a tensor and
  asks ``torch.any(shape == 0)`` at every call, a data-dependent branch that ``torch.export`` (and so
  litert-torch) refuses: ``GuardOnDataDependentSymNode: Could not guard on data-dependent expression Eq(u0, 1)``.
  ``allowzero=1`` stays refused unless the shape has no zero.
- ``Slice`` and ``Resize`` with constant starts/ends/axes/steps and scales/sizes: the same, for the same
  reason (onnx2torch calls ``.numpy()`` / ``.tolist()`` on those tensors at every call).
- ``Squeeze`` / ``Unsqueeze`` (opset 13, axes as an input): likewise.
- ``Pad`` (opsets 11, 13) with constant pads (initializers, as normalisation leaves them): a static
  ``F.pad`` over the padded axes only. onnx2torch's own module reads the pads tensor at every call and drops
  the last four torch pad entries for reflect/edge modes, which fails on 2-D and 3-D inputs (silero-vad's
  reflect pad of a [1, 576] frame: ``reflect padding is implemented for padding the last 3 dimensions...``).
"""

from __future__ import annotations

import functools

_registered = False


def register() -> None:
    """Add the converters to onnx2torch's registry (idempotent); import onnx2torch first (see loaders)."""
    global _registered
    if _registered:
        return
    from onnx2torch.node_converters import registry

    table = registry._CONVERTER_REGISTRY  # noqa: SLF001 - onnx2torch's only registry; add_converter refuses overrides
    for version in (7, 14):
        key = registry.OperationDescription("", "LSTM", version)
        if key not in table:
            table[key] = _convert_lstm
    for version in (7, 10, 11, 19):
        key = registry.OperationDescription("", "AveragePool", version)
        table[key] = _with_asymmetric_pads(table.get(key))
    for version in (1, 11):
        key = registry.OperationDescription("", "ConvTranspose", version)
        table[key] = _with_cropped_transpose(table.get(key))
    for version in (11, 13):
        key = registry.OperationDescription("", "Pad", version)
        table[key] = _with_static_pads(table.get(key))
    for version in (5, 13, 14):
        key = registry.OperationDescription("", "Reshape", version)
        table[key] = _with_static_shape(table.get(key))
    for version in (10, 11, 13):
        key = registry.OperationDescription("", "Slice", version)
        table[key] = _with_static_slice(table.get(key))
    for version in (11, 13):
        key = registry.OperationDescription("", "Resize", version)
        table[key] = _with_static_resize(table.get(key))
    for op in ("Squeeze", "Unsqueeze"):
        key = registry.OperationDescription("", op, 13)
        table[key] = _with_static_axes(table.get(key))
    _registered = True


@functools.cache
def _modules():
    """The torch modules, defined on first use so that importing this file does not import torch."""
    import torch
    from onnx2torch.utils.common import OnnxToTorchModule
    from torch import nn
    from torch.nn import functional

    class OnnxLSTM(nn.Module, OnnxToTorchModule):
        """ONNX ``LSTM``: returns ``(Y, Y_h, Y_c)`` in ONNX's layouts."""

        def __init__(self, lstm: nn.LSTM, layout: int) -> None:
            super().__init__()
            self.lstm, self.layout = lstm, layout

        def forward(self, x, sequence_lens=None, initial_h=None, initial_c=None):
            dirs, hidden = 2 if self.lstm.bidirectional else 1, self.lstm.hidden_size
            batch = x.shape[0] if self.layout else x.shape[1]
            if self.layout:  # states [batch, dirs, hidden] in layout 1
                initial_h = None if initial_h is None else initial_h.transpose(0, 1)
                initial_c = None if initial_c is None else initial_c.transpose(0, 1)
            zeros = x.new_zeros(dirs, batch, hidden)
            h0 = zeros if initial_h is None else initial_h.contiguous()
            c0 = zeros if initial_c is None else initial_c.contiguous()
            y, (h, c) = self.lstm(x, (h0, c0))
            if self.layout:  # y [batch, seq, dirs*hidden] -> Y [batch, seq, dirs, hidden]
                return y.reshape(batch, -1, dirs, hidden), h.transpose(0, 1), c.transpose(0, 1)
            return y.reshape(y.shape[0], batch, dirs, hidden).permute(0, 2, 1, 3), h, c  # Y [seq, dirs, batch, hidden]

    class AsymmetricAvgPool(nn.Module, OnnxToTorchModule):
        """ONNX ``AveragePool`` with pads that differ at the two ends of an axis."""

        def __init__(self, kernel, strides, pads, ceil_mode: bool, count_include_pad: bool) -> None:
            super().__init__()
            rank = len(kernel)
            self.kernel, self.strides, self.ceil_mode = tuple(kernel), tuple(strides), ceil_mode
            self.count_include_pad = count_include_pad
            begins, ends = pads[:rank], pads[rank:]
            self.torch_pads = [p for axis in reversed(range(rank)) for p in (begins[axis], ends[axis])]
            self.pool = {1: functional.avg_pool1d, 2: functional.avg_pool2d, 3: functional.avg_pool3d}[rank]

        def _avg(self, x):
            return self.pool(x, self.kernel, self.strides, 0, self.ceil_mode, True)

        def forward(self, x):
            pooled = self._avg(functional.pad(x, self.torch_pads))
            if self.count_include_pad:
                return pooled
            real = self._avg(functional.pad(torch.ones_like(x[:, :1]), self.torch_pads))
            return pooled / real

    class StaticPad(nn.Module, OnnxToTorchModule):
        """ONNX ``Pad`` with constant pads: ``F.pad`` over the padded axes only."""

        def __init__(self, torch_pads: list[int], mode: str, value: float) -> None:
            super().__init__()
            self.torch_pads, self.mode, self.value = torch_pads, mode, value

        def forward(self, x, *_constants):
            if self.mode == "constant":
                return functional.pad(x, self.torch_pads, mode="constant", value=self.value)
            return functional.pad(x, self.torch_pads, mode=self.mode)

    class StaticReshape(nn.Module, OnnxToTorchModule):
        """ONNX ``Reshape`` to a constant shape (``0`` copies the input's dimension, ``-1`` is inferred)."""

        def __init__(self, shape: list[int]) -> None:
            super().__init__()
            self.shape = shape

        def forward(self, x, *_constants):
            return torch.reshape(x, [x.shape[i] if d == 0 else d for i, d in enumerate(self.shape)])

    class StaticSlice(nn.Module, OnnxToTorchModule):
        """ONNX ``Slice`` with constant starts/ends/axes/steps, as Python slices (negative steps by flipping)."""

        def __init__(self, starts, ends, axes, steps) -> None:
            super().__init__()
            self.parts = list(zip(starts, ends, axes, steps))

        def forward(self, x, *_constants):
            index = [slice(None)] * x.dim()
            flips = []
            for start, end, axis, step in self.parts:
                axis %= x.dim()
                if step < 0:
                    flips.append(axis)
                    start, end, step = -start - 1, -end - 1, -step
                index[axis] = slice(start, end, step)
            if flips:
                x = torch.flip(x, dims=flips)
            return x[tuple(index)]

    class StaticResize(nn.Module, OnnxToTorchModule):
        """onnx2torch's Resize module called with its constant scales/sizes as Python lists."""

        def __init__(self, inner, scales, sizes) -> None:
            super().__init__()
            self.inner, self.scales, self.sizes = inner, scales, sizes

        def forward(self, x, *_constants):
            return functional.interpolate(
                x,
                size=None if self.sizes is None else self.sizes[2:],
                scale_factor=None if self.scales is None else self.scales[2:],
                mode=self.inner_mode(x),
                align_corners=self.inner.align_corners,
            )

        def inner_mode(self, x):
            from onnx2torch.node_converters.resize import _onnx_mode_to_torch_mode

            return _onnx_mode_to_torch_mode(self.inner.onnx_mode, x.dim() - 2)

    class StaticAxes(nn.Module, OnnxToTorchModule):
        """ONNX ``Squeeze`` / ``Unsqueeze`` (opset 13+) with constant axes."""

        def __init__(self, op: str, axes: list[int] | None) -> None:
            super().__init__()
            self.op, self.axes = op, axes

        def forward(self, x, *_constants):
            if self.op == "Squeeze":
                axes = self.axes if self.axes is not None else [i for i, d in enumerate(x.shape) if d == 1]
                return torch.squeeze(x, [a % x.dim() for a in axes]) if axes else x
            rank = x.dim() + len(self.axes)
            for axis in sorted(a % rank for a in self.axes):
                x = torch.unsqueeze(x, axis)
            return x

    class CroppedConvTranspose(nn.Module, OnnxToTorchModule):
        """A transposed convolution without padding, cropped by ONNX's (asymmetric) pads."""

        def __init__(self, conv, pads: list[int]) -> None:
            super().__init__()
            self.conv, self.pads = conv, pads

        def forward(self, x):
            y = self.conv(x)
            rank = len(self.pads) // 2
            index = [slice(None), slice(None)]
            for axis in range(rank):
                begin, end = self.pads[axis], self.pads[rank + axis]
                index.append(slice(begin, y.shape[2 + axis] - end))
            return y[tuple(index)]

    return (
        OnnxLSTM,
        AsymmetricAvgPool,
        StaticPad,
        StaticReshape,
        StaticSlice,
        StaticResize,
        StaticAxes,
        CroppedConvTranspose,
    )


def _convert_lstm(node, graph):
    import torch
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult

    attributes = node.attributes
    refused = [a for a in ("clip", "activations", "activation_alpha", "activation_beta") if a in attributes]
    if attributes.get("input_forget", 0):
        refused.append("input_forget")
    inputs = list(node.input_values) + [""] * (8 - len(node.input_values))
    if inputs[4]:
        refused.append("sequence_lens")
    if inputs[7]:
        refused.append("peepholes (P)")
    if attributes.get("layout", 0):
        refused.append("layout=1")
    if refused:
        raise NotImplementedError(f"LSTM with {', '.join(refused)} is not implemented")
    hidden = int(attributes["hidden_size"])
    direction = attributes.get("direction", "forward")
    if isinstance(direction, bytes):
        direction = direction.decode()
    weights = graph.initializers[inputs[1]].to_torch()  # [dirs, 4H, I], gates i o f c
    recurrent = graph.initializers[inputs[2]].to_torch()  # [dirs, 4H, H]
    dirs = weights.shape[0]
    bias = graph.initializers[inputs[3]].to_torch() if inputs[3] else torch.zeros(dirs, 8 * hidden)
    lstm = torch.nn.LSTM(
        weights.shape[2],
        hidden,
        bidirectional=direction == "bidirectional",
        batch_first=bool(attributes.get("layout", 0)),
    )

    def regroup(tensor):  # i o f c -> i f c o along the first axis
        i, o, f, c = tensor.chunk(4, dim=0)
        return torch.cat([i, f, c, o])

    with torch.no_grad():
        for index in range(dirs):
            suffix = "_reverse" if index == 1 else ""
            if direction == "reverse":
                raise NotImplementedError("LSTM with direction='reverse' is not implemented")
            getattr(lstm, f"weight_ih_l0{suffix}").copy_(regroup(weights[index]))
            getattr(lstm, f"weight_hh_l0{suffix}").copy_(regroup(recurrent[index]))
            getattr(lstm, f"bias_ih_l0{suffix}").copy_(regroup(bias[index, : 4 * hidden]))
            getattr(lstm, f"bias_hh_l0{suffix}").copy_(regroup(bias[index, 4 * hidden :]))
    onnx_lstm, *_ = _modules()
    mapping = OnnxMapping(inputs=(inputs[0], inputs[4], inputs[5], inputs[6]), outputs=node.output_values)
    return OperationConverterResult(
        torch_module=onnx_lstm(lstm, int(attributes.get("layout", 0))), onnx_mapping=mapping
    )


def _wrapping(make):
    """Decorator for a converter that wraps onnx2torch's own (``original``, may be None): built once, so that
    registering again wraps nothing twice (the wrapper is marked ``edgeforge``)."""

    @functools.wraps(make)
    def wrap(original):
        if getattr(original, "edgeforge", False):
            return original
        convert = make(original)
        convert.edgeforge = True
        return convert

    return wrap


def _result(module, node):
    """The converter result of ``module`` fed by the node's first input (the others are folded into it)."""
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult

    return OperationConverterResult(
        torch_module=module, onnx_mapping=OnnxMapping(list(node.input_values)[:1], node.output_values)
    )


@_wrapping
def _with_asymmetric_pads(original):
    """onnx2torch's AveragePool converter, falling back to :class:`AsymmetricAvgPool` where it refuses the pads."""

    def convert(node, graph):
        from onnx2torch.utils.common import onnx_mapping_from_node

        attributes = node.attributes
        pads = list(attributes.get("pads", []))
        rank = len(attributes["kernel_shape"])
        asymmetric = attributes.get("auto_pad", "NOTSET") == "NOTSET" and pads and pads[:rank] != pads[rank:]
        if original is not None and not asymmetric:
            return original(node, graph)
        if not asymmetric:
            raise NotImplementedError(f"AveragePool {attributes} is not implemented")
        from onnx2torch.utils.common import OperationConverterResult

        _, pool, *_ = _modules()
        module = pool(
            attributes["kernel_shape"],
            attributes.get("strides", [1] * rank),
            pads,
            bool(attributes.get("ceil_mode", 0)),
            bool(attributes.get("count_include_pad", 0)),
        )
        return OperationConverterResult(torch_module=module, onnx_mapping=onnx_mapping_from_node(node))

    return convert


PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}


@_wrapping
def _with_static_pads(original):
    """onnx2torch's Pad converter, replaced by :class:`StaticPad` where the pads (and value) are initializers."""

    def convert(node, graph):
        inputs = list(node.input_values)
        constant = all(not name or name in graph.initializers for name in inputs[1:3])
        mode = node.attributes.get("mode", "constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if not constant or len(inputs) > 3 or mode not in PAD_MODES:  # axes input (opset 18) or a dynamic pad
            return original(node, graph)
        pads = [int(p) for p in graph.initializers[inputs[1]].to_torch().tolist()]
        value = float(graph.initializers[inputs[2]].to_torch().item()) if len(inputs) > 2 and inputs[2] else 0.0
        rank = len(pads) // 2
        torch_pads = [p for axis in reversed(range(rank)) for p in (pads[axis], pads[rank + axis])]
        while len(torch_pads) > 2 and torch_pads[-2:] == [0, 0]:  # leading axes left unpadded
            torch_pads = torch_pads[:-2]
        static_pad = _modules()[2]
        module = static_pad(torch_pads, PAD_MODES[mode], value)
        return _result(module, node)

    return convert


@_wrapping
def _with_static_shape(original):
    """onnx2torch's Reshape converter, replaced by :class:`StaticReshape` where the shape is an initializer."""

    def convert(node, graph):
        inputs = list(node.input_values)
        if len(inputs) < 2 or inputs[1] not in graph.initializers:
            return original(node, graph)
        shape = [int(d) for d in graph.initializers[inputs[1]].to_torch().tolist()]
        if node.attributes.get("allowzero", 0) == 1 and 0 in shape:
            raise NotImplementedError('"allowzero=1" with a zero in the shape is not implemented')
        static_reshape = _modules()[3]
        return _result(static_reshape(shape), node)

    return convert


def _constant(graph, name: str):
    return graph.initializers[name].to_torch().tolist() if name else None


@_wrapping
def _with_static_slice(original):
    """onnx2torch's Slice converter, replaced by :class:`StaticSlice` where starts/ends/axes/steps are constant."""

    def convert(node, graph):
        inputs = list(node.input_values)
        if not all(not name or name in graph.initializers for name in inputs[1:]):
            return original(node, graph)
        starts, ends = _constant(graph, inputs[1]), _constant(graph, inputs[2])
        axes = _constant(graph, inputs[3]) if len(inputs) > 3 and inputs[3] else list(range(len(starts)))
        steps = _constant(graph, inputs[4]) if len(inputs) > 4 and inputs[4] else [1] * len(starts)
        module = _modules()[4](starts, ends, axes, steps)
        return _result(module, node)

    return convert


@_wrapping
def _with_static_resize(original):
    """onnx2torch's Resize converter (its checks of mode and coordinates kept), with constant scales/sizes."""

    def convert(node, graph):
        inputs = list(node.input_values) + [""] * 4
        result = original(node, graph)
        if not all(not name or name in graph.initializers for name in inputs[1:4]):
            return result
        roi, scales, sizes = (_constant(graph, name) for name in inputs[1:4])
        if roi and not getattr(result.torch_module, "ignore_roi", False):
            return result
        scales = scales or None
        sizes = sizes or None
        module = _modules()[5](result.torch_module, scales, sizes)
        return _result(module, node)

    return convert


@_wrapping
def _with_static_axes(original):
    """onnx2torch's Squeeze/Unsqueeze-13 converter, replaced by :class:`StaticAxes` where the axes are constant."""

    def convert(node, graph):
        inputs = list(node.input_values)
        if len(inputs) > 1 and inputs[1] and inputs[1] not in graph.initializers:
            return original(node, graph)
        axes = _constant(graph, inputs[1]) if len(inputs) > 1 and inputs[1] else None
        if axes is not None and not isinstance(axes, list):
            axes = [axes]
        module = _modules()[6](node.operation_type, axes)
        return _result(module, node)

    return convert


@_wrapping
def _with_cropped_transpose(original):
    """onnx2torch's Conv/ConvTranspose converter; asymmetric ConvTranspose pads become a crop after the layer."""

    def convert(node, graph):
        import torch

        attributes = node.attributes
        pads = list(attributes.get("pads", []))
        rank = len(pads) // 2
        if node.operation_type != "ConvTranspose" or not pads or pads[:rank] == pads[rank:]:
            return original(node, graph)
        if attributes.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET") or "output_shape" in attributes:
            return original(node, graph)
        inputs = list(node.input_values)
        weight = graph.initializers[inputs[1]].to_torch()
        bias = graph.initializers[inputs[2]].to_torch() if len(inputs) > 2 and inputs[2] else None
        groups = attributes.get("group", 1)
        layer = {1: torch.nn.ConvTranspose1d, 2: torch.nn.ConvTranspose2d, 3: torch.nn.ConvTranspose3d}[rank](
            weight.shape[0],
            weight.shape[1] * groups,
            kernel_size=tuple(weight.shape[2:]),
            stride=attributes.get("strides", 1),
            dilation=attributes.get("dilations", 1),
            output_padding=attributes.get("output_padding", 0),
            groups=groups,
            bias=bias is not None,
        )
        with torch.no_grad():
            layer.weight.copy_(weight)
            if bias is not None:
                layer.bias.copy_(bias)
        module = _modules()[7](layer, pads)
        return _result(module, node)

    return convert


def static_reshape_class() -> type:
    """The module our Reshape converter uses for constant target shapes (what layered rebuilds look for)."""
    return _modules()[3]
