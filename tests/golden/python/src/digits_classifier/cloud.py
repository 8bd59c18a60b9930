"""The cloud half: Open Inference Protocol v2 ``ModelInfer`` over gRPC with raw tensor contents."""

from __future__ import annotations

from typing import Optional

import grpc
import numpy as np

from digits_classifier._oip.inference import grpc_service_pb2 as pb
from digits_classifier._oip.inference import grpc_service_pb2_grpc as pb_grpc
from digits_classifier.policy import CloudFailure

NUMPY_DTYPES = {"BOOL": "bool", "UINT8": "uint8", "INT8": "int8", "INT16": "int16", "INT32": "int32",
                "INT64": "int64", "FP16": "float16", "FP32": "float32", "FP64": "float64"}


class OipCloudClient:
    """Calls ``ModelInfer`` for the manifest's cloud model at ``endpoint`` (HOST:PORT), plaintext or TLS."""

    def __init__(self, endpoint: str, cloud: dict, token: Optional[str] = None, tls: bool = False) -> None:
        self.cloud = cloud
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.channel = grpc.secure_channel(endpoint, grpc.ssl_channel_credentials()) if tls else grpc.insecure_channel(endpoint)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)

    def infer(self, inputs: list, timeout_s: float) -> list:
        request = pb.ModelInferRequest(model_name=self.cloud["model_name"], model_version=self.cloud["model_version"])
        for spec, array in zip(self.cloud["inputs"], inputs):
            array = np.ascontiguousarray(array, dtype=NUMPY_DTYPES[spec["datatype"]])
            request.inputs.add(name=spec["name"], datatype=spec["datatype"], shape=list(array.shape))
            request.raw_input_contents.append(array.tobytes())
        try:
            response = self.stub.ModelInfer(request, timeout=timeout_s, metadata=self.metadata)
        except grpc.RpcError as exc:
            code = exc.code()
            kind = {grpc.StatusCode.DEADLINE_EXCEEDED: "timeout", grpc.StatusCode.UNAVAILABLE: "unavailable"}.get(code, "error")
            raise CloudFailure(kind, f"{code.name}: {exc.details()}") from None
        by_name = {}
        for tensor, raw in zip(response.outputs, response.raw_output_contents):
            by_name[tensor.name] = np.frombuffer(raw, dtype=NUMPY_DTYPES[tensor.datatype]).reshape(tuple(tensor.shape))
        missing = [o["name"] for o in self.cloud["outputs"] if o["name"] not in by_name]
        if missing:
            raise CloudFailure("error", f"response lacks outputs {missing}")
        return [by_name[o["name"]].astype(np.float32) for o in self.cloud["outputs"]]

    def close(self) -> None:
        self.channel.close()
