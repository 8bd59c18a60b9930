"""The ONNX -> PyTorch route (onnx2torch), used for TFLite artifacts of ONNX sources and for training-based steps.

ONNX artifacts of an ONNX source never take this route: they start from the graph as submitted.
"""

from __future__ import annotations

import contextlib
import sys
import types
from pathlib import Path

from compressor.errors import TechniqueNotApplicableError

ONNX2TORCH_OPSET = 17


def onnx_to_torch(model, path: Path | None, feeds: dict | None = None, normalise: bool = True):
    """Turn an ONNX graph into an eager ``torch.nn.Module`` with onnx2torch.

    With ``normalise`` (the default) the graph first goes through :func:`compressor.onnx_normalize.normalize`:
    shapes fixed from ``feeds`` (the user's samples), opset converted, constants folded and lifted to initializers,
    ``auto_pad`` made explicit, and the result checked against the original in onnxruntime on the samples.  The
    extra converters of :mod:`compressor.onnx_converters` (LSTM, asymmetric pads, constant-operand
    Pad/Reshape/Slice/Resize/Squeeze) are registered with onnx2torch.  Graphs exported by PyTorch itself (the
    layered rebuild) skip normalisation (``normalise=False``): their dynamic batch must stay dynamic.
    """
    from onnx import version_converter

    from compressor.errors import ConversionError, InvalidInputError
    from compressor.onnx_converters import register
    from compressor.onnx_normalize import normalize

    with _torchvision_stand_in():
        from onnx2torch import convert

        register()
    if normalise:
        try:
            model, _report = normalize(model, feeds)
        except (ConversionError, InvalidInputError) as exc:
            raise TechniqueNotApplicableError(
                f"ONNX model {path or ''} could not be normalised for onnx2torch ({exc}); it can still target ONNX "
                "profiles"
            ) from None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), ONNX2TORCH_OPSET)
    if opset > ONNX2TORCH_OPSET:
        model = version_converter.convert_version(model, ONNX2TORCH_OPSET)
    _relax_reshape_allowzero(model)
    try:
        return convert(model).eval()
    except (KeyError, ValueError, RuntimeError) as exc:
        raise TechniqueNotApplicableError(
            f"ONNX model {path or ''} could not be read by onnx2torch ({type(exc).__name__}: {str(exc)[:160]}); it can "
            "still target ONNX profiles"
        ) from None
    except NotImplementedError as exc:
        raise TechniqueNotApplicableError(
            f"ONNX model {path or ''} uses an operator onnx2torch cannot turn into PyTorch ({exc}); it can still "
            "target ONNX profiles. For TFLite profiles or training-based techniques submit the PyTorch model "
            "as an ExportedProgram (.pt2)."
        ) from None


def _relax_reshape_allowzero(model) -> None:
    """Clear ``allowzero=1`` on Reshape nodes whose constant target shape has no zero (it changes nothing there)."""
    from onnx import numpy_helper

    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    for node in model.graph.node:
        if node.op_type != "Reshape":
            continue
        target = constants.get(node.input[1])
        for attribute in node.attribute:
            if attribute.name == "allowzero" and attribute.i == 1 and target is not None and 0 not in target:
                attribute.i = 0


@contextlib.contextmanager
def _torchvision_stand_in():
    """onnx2torch imports torchvision (at import time) for two detection ops only; where it is not installed,
    stand in for it while onnx2torch is imported, then forget the stand-in, which torch.onnx's exporter would
    otherwise take for the real package."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        pass
    else:
        yield
        return

    def missing(*_args, **_kwargs):
        raise TechniqueNotApplicableError(
            "this ONNX model uses NonMaxSuppression or RoiAlign, which need torchvision to run in PyTorch; "
            "it can still target ONNX profiles"
        )

    ops = types.ModuleType("torchvision.ops")
    ops.batched_nms = ops.nms = ops.roi_align = missing
    package = types.ModuleType("torchvision")
    package.ops = ops
    sys.modules.update({"torchvision": package, "torchvision.ops": ops})
    try:
        yield
    finally:
        for name, stand_in in (("torchvision", package), ("torchvision.ops", ops)):
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


def onnx_reshape_class() -> type:
    """onnx2torch's Reshape module class (what its graphs use for ONNX Reshape nodes)."""
    with _torchvision_stand_in():
        from onnx2torch.node_converters.reshape import OnnxReshape
    return OnnxReshape
