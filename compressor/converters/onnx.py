"""ONNX: the source's own fp32 graph, then every precision with onnxruntime's tools.

PyTorch sources are exported with ``torch.onnx.export`` (dynamo), with a dynamic batch axis unless static shapes
are asked for; ONNX sources start from the graph as submitted.  fp16 converts weights and activations with float32
model I/O kept; int8-dynamic quantizes weights; int8-full inserts QDQ pairs with int8 weights and activations
calibrated on the calibration samples.  Weights get one scale per output channel, or per tensor when asked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from compressor.converters.base import ConvertInput
from compressor.data import SampleData
from compressor.profiles import Format, Precision


class OnnxConverter:
    format = Format.ONNX
    precisions = tuple(Precision)
    route = "onnxruntime.quantization"  # what derives the precisions; the fp32 graph is the source's own route

    def fp32(self, inp: ConvertInput, out: Path) -> None:
        inp.source.export_onnx(out, inp.sample_args, inp.dynamic_batch)

    def quantize(self, base: Path, out: Path, precision: Precision, inp: ConvertInput) -> None:
        import onnx

        if precision is Precision.FP32:
            shutil.copyfile(base, out)
            return
        if precision is Precision.FP16:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            onnx.save(convert_float_to_float16(onnx.load(str(base)), keep_io_types=True), str(out))
            return
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        prepared = inp.workdir / "fp32-prepared.onnx"
        if not prepared.exists():
            quant_pre_process(str(base), str(prepared), skip_symbolic_shape=True)
        per_channel = inp.weight_granularity == "channel"
        if precision is Precision.INT8_DYNAMIC:
            quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QInt8, per_channel=per_channel)
            return
        graph = onnx.load(str(prepared)).graph
        weights = {i.name for i in graph.initializer}
        names = [i.name for i in graph.input if i.name not in weights]
        quantize_static(
            str(prepared),
            str(out),
            _Calibration(names, inp.calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over the calibration samples, one at a time."""

    def __init__(self, names: list[str], data: SampleData) -> None:
        self._rows = iter(
            [
                {n: np.ascontiguousarray(a[i : i + 1]) for n, a in zip(names, data.inputs.values())}
                for i in range(len(data))
            ]
        )

    def get_next(self):
        return next(self._rows, None)


CONVERTER = OnnxConverter()
