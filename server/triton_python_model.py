"""Triton Python-backend model: runs the ``model.onnx`` beside it through onnxruntime.

Copied as ``<model>/<version>/model.py`` by ``sdkgen export-triton --backend python``; it runs inside Triton's
Python backend (which provides ``triton_python_backend_utils``) and is never imported by EdgeForge itself.  The
Python environment Triton runs it in needs numpy and onnxruntime (numpy < 2 for Triton 2.51, whose Python backend
returns empty output tensors for numpy 2 arrays).
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """One onnxruntime session per model instance; each request runs with the outputs it asked for."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [t["name"] for t in config["input"]]
        self.outputs = [t["name"] for t in config["output"]]

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                feeds = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.inputs}
                names = request.requested_output_names() or self.outputs
                arrays = self.session.run(list(names), feeds)
                tensors = [pb_utils.Tensor(n, np.ascontiguousarray(a)) for n, a in zip(names, arrays)]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as exc:  # noqa: BLE001 - the caller gets the error, the model keeps serving
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"onnxruntime: {exc}")))
        return responses
