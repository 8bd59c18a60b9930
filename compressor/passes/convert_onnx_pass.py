"""Produce ONNX artifacts: export (or take) an fp32 graph, then derive each precision with onnxruntime's tools.

PyTorch sources are exported with ``torch.onnx.export`` (dynamo), with a dynamic
batch axis unless the profile demands static shapes; ONNX sources are used as
submitted.  fp16 converts weights and activations with float32 model I/O kept;
int8-dynamic quantizes weights per channel; int8-full inserts QDQ pairs with
per-channel weights and activations calibrated on the user's data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from compressor.candidates import derive_candidates
from compressor.errors import ConversionError, EdgeForgeError, TechniqueNotApplicableError
from compressor.native_output import captured
from compressor.profiles import Format, Precision
from compressor.state import BuildState

FORMAT = Format.ONNX
OPSET = 18
BASE = "fp32-base.onnx"  # in the build's work folder


def run(state: BuildState) -> None:
    precisions = state.precisions_for(FORMAT)
    stage = state.progress.stage("convert onnx", len(precisions) + 1)
    base = state.workdir / BASE
    with captured(state.workdir / "converter.log"):
        export_fp32(state, base, dynamic_batch=_dynamic_batch(state))
    stage.advance("fp32 graph")
    derive_candidates(state, FORMAT, base, quantize, stage)


def export_fp32(state: BuildState, out, dynamic_batch: bool = True) -> None:
    """Write the plain fp32 ONNX form of the source model to ``out``.

    When this build's ONNX pass already exported it with the same batch axis, that graph is copied.
    """
    source, base = state.source, state.workdir / BASE
    if source.family == "onnx":
        shutil.copyfile(source.path, out)
        return
    if source.family == "keras":
        raise TechniqueNotApplicableError(
            f"profile {state.profile.name!r} needs ONNX, and Keras models reach TFLite only here; convert the "
            "model to ONNX first (e.g. with tf2onnx) and submit the .onnx file"
        )
    if base.exists() and base != Path(out) and dynamic_batch == _dynamic_batch(state):
        shutil.copyfile(base, out)
        return
    try:
        export_torch(source.torch_module(), state.torch_sample_args(), out, dynamic_batch)
    except EdgeForgeError:
        raise
    except Exception as exc:
        raise ConversionError(
            f"exporting the {source.format} model to ONNX failed ({type(exc).__name__}: {str(exc)[:400]}); "
            "see converter.log in the work directory"
        ) from exc


def _dynamic_batch(state: BuildState) -> bool:
    return not state.profile.accepts.static_shapes


def export_torch(module, sample_args: tuple, out, dynamic_batch: bool) -> None:
    """Export a ``torch.nn.Module`` to ONNX at ``out`` (dynamic batch when it allows one and it is asked for)."""
    import torch

    dynamic = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=4096)
        dynamic = tuple({0: batch} for _ in sample_args)
    try:
        program = torch.onnx.export(module, sample_args, dynamo=True, dynamic_shapes=dynamic, opset_version=OPSET)
    except Exception:
        if dynamic is None:
            raise
        program = torch.onnx.export(module, sample_args, dynamo=True, opset_version=OPSET)
    program.save(str(out))


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over the user's samples."""

    def __init__(self, names: list[str], data) -> None:
        self._rows = iter(
            [
                {n: np.ascontiguousarray(a[i : i + 1]) for n, a in zip(names, data.inputs.values())}
                for i in range(len(data))
            ]
        )

    def get_next(self):
        return next(self._rows, None)


def quantize(base, out, precision: Precision, state: BuildState) -> None:
    """Derive the ``precision`` artifact from the fp32 graph ``base``."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if precision is Precision.FP32:
        shutil.copyfile(base, out)
    elif precision is Precision.FP16:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(str(base)), keep_io_types=True), str(out))
    else:
        prepared = state.workdir / "fp32-prepared.onnx"
        if not prepared.exists():
            quant_pre_process(str(base), str(prepared), skip_symbolic_shape=True)
        if precision is Precision.INT8_DYNAMIC:
            quantize_dynamic(
                str(prepared), str(out), weight_type=QuantType.QInt8, per_channel=not state.per_tensor_weights
            )
        else:
            graph = onnx.load(str(prepared)).graph
            weights = {i.name for i in graph.initializer}
            names = [i.name for i in graph.input if i.name not in weights]
            quantize_static(
                str(prepared),
                str(out),
                _Calibration(names, state.calibration()),
                quant_format=QuantFormat.QDQ,
                per_channel=not state.per_tensor_weights,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
            )
