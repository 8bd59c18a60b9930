"""The on-device engine: LiteRT (ai-edge-litert) over the verified model bytes."""

from __future__ import annotations

import numpy as np

from digits_classifier.tensors import dequantize, quantize


class LiteRtEngine:
    """A ``.tflite`` model in the LiteRT interpreter; int8/uint8 tensors use the model's scale and zero point, and
    inputs with dynamic dimensions resize the interpreter to the shape given."""

    def __init__(self, model_bytes: bytes, num_threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=model_bytes, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()

    def run(self, inputs: list) -> list:
        self._fit([np.shape(a) for a in inputs])
        for detail, array in zip(self._in, inputs):
            dtype = np.dtype(detail["dtype"])
            scale, zero_point = detail["quantization"]
            if scale and dtype.kind in "iu":
                array = quantize(array, scale, zero_point, dtype.name)
            self.interpreter.set_tensor(detail["index"], np.ascontiguousarray(array, dtype=dtype))
        self.interpreter.invoke()
        outputs = []
        for detail in self.interpreter.get_output_details():
            value = self.interpreter.get_tensor(detail["index"])
            scale, zero_point = detail["quantization"]
            outputs.append(dequantize(value, scale, zero_point) if scale else np.array(value, dtype=np.float32))
        return outputs

    def _fit(self, shapes: list) -> None:
        """Resize inputs whose shape differs from the interpreter's current one (dynamic dimensions)."""
        changed = False
        for detail, shape in zip(self._in, shapes):
            if tuple(detail["shape"]) != tuple(shape):
                self.interpreter.resize_tensor_input(detail["index"], list(shape))
                changed = True
        if changed:
            self.interpreter.allocate_tensors()
            self._in = self.interpreter.get_input_details()


open_engine = LiteRtEngine
