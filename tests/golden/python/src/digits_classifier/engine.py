"""The on-device engine: LiteRT (ai-edge-litert) over the verified model bytes."""

from __future__ import annotations

import numpy as np


class LiteRtEngine:
    """A ``.tflite`` model in the LiteRT interpreter; int8 inputs/outputs use the model's scale and zero point."""

    def __init__(self, model_bytes: bytes, num_threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=model_bytes, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()
        self._out = self.interpreter.get_output_details()

    def run(self, inputs: list) -> list:
        for detail, array in zip(self._in, inputs):
            dtype = np.dtype(detail["dtype"])
            scale, zero_point = detail["quantization"]
            if scale and not np.issubdtype(np.asarray(array).dtype, np.integer):
                info = np.iinfo(dtype)
                array = np.clip(np.round(np.asarray(array) / scale) + zero_point, info.min, info.max)
            self.interpreter.set_tensor(detail["index"], np.ascontiguousarray(array, dtype=dtype))
        self.interpreter.invoke()
        outputs = []
        for detail in self._out:
            value = self.interpreter.get_tensor(detail["index"])
            scale, zero_point = detail["quantization"]
            outputs.append((value.astype(np.float32) - zero_point) * scale if scale else np.array(value, dtype=np.float32))
        return outputs


open_engine = LiteRtEngine
