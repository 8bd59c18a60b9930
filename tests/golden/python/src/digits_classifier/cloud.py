"""The cloud half: Open Inference Protocol v2 ``ModelInfer`` over gRPC with raw tensor contents.

TLS is on unless the endpoint is a loopback address (or ``tls=False`` is passed); a bearer token is sent only over
TLS or to loopback, and never appears in a message, a ``repr`` or a log line.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Optional, Union

import grpc
import numpy as np

from digits_classifier._oip import ModelInferRequest, model_infer
from digits_classifier.policy import Cancelled, CloudFailure

NUMPY_DTYPES = {"BOOL": "bool", "UINT8": "uint8", "INT8": "int8", "INT16": "int16", "INT32": "int32",
                "INT64": "int64", "FP16": "float16", "FP32": "float32", "FP64": "float64"}
KINDS = {grpc.StatusCode.DEADLINE_EXCEEDED: "timeout", grpc.StatusCode.UNAVAILABLE: "unavailable"}


def split_endpoint(endpoint: str) -> tuple:
    """(host, port) of ``HOST:PORT`` or ``[IPv6]:PORT``; raise ``ValueError`` naming the endpoint otherwise."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"cloud endpoint {endpoint!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost``, 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def channel_for(endpoint: str, tls: Optional[bool], ca_cert: Union[str, Path, bytes, None], token: Optional[str]):
    """A gRPC channel to ``endpoint``: TLS when ``tls`` says so or (``None``) the host is not loopback."""
    host, _ = split_endpoint(endpoint)
    secure = (not is_loopback(host)) if tls is None else tls
    if token and not secure and not is_loopback(host):
        raise ValueError(f"a token is sent only over TLS or to a loopback endpoint; {endpoint} has tls=False")
    if not secure:
        return grpc.insecure_channel(endpoint)
    roots = Path(ca_cert).read_bytes() if isinstance(ca_cert, (str, Path)) else ca_cert
    return grpc.secure_channel(endpoint, grpc.ssl_channel_credentials(root_certificates=roots))


class OipCloudClient:
    """Calls ``ModelInfer`` for one served model (the manifest's ``cloud`` or split ``tail`` section) at ``endpoint``."""

    def __init__(self, endpoint: str, cloud: dict, token: Optional[str] = None, tls: Optional[bool] = None,
                 ca_cert: Union[str, Path, bytes, None] = None) -> None:
        self.endpoint, self.cloud = endpoint, cloud
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.channel = channel_for(endpoint, tls, ca_cert, token)
        self._infer = model_infer(self.channel)

    def __repr__(self) -> str:
        return f"OipCloudClient({self.endpoint!r}, model={self.cloud['model_name']!r}, token={'set' if self._metadata else None})"

    def infer(self, inputs: list, timeout_s: float) -> list:
        request = ModelInferRequest(model_name=self.cloud["model_name"], model_version=self.cloud["model_version"])
        for spec, array in zip(self.cloud["inputs"], inputs):
            array = np.ascontiguousarray(array, dtype=NUMPY_DTYPES[spec["datatype"]])
            request.inputs.add(name=spec["name"], datatype=spec["datatype"], shape=list(array.shape))
            request.raw_input_contents.append(array.tobytes())
        try:
            response = self._infer(request, timeout=timeout_s, metadata=self._metadata)
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.CANCELLED:
                raise Cancelled(f"{self.cloud['model_name']}: the call was cancelled") from None
            raise CloudFailure(KINDS.get(code, "error"), f"{code.name}: {exc.details()}") from None
        by_name = {}
        for tensor, raw in zip(response.outputs, response.raw_output_contents):
            by_name[tensor.name] = np.frombuffer(raw, dtype=NUMPY_DTYPES[tensor.datatype]).reshape(tuple(tensor.shape))
        missing = [o["name"] for o in self.cloud["outputs"] if o["name"] not in by_name]
        if missing:
            raise CloudFailure("error", f"response lacks outputs {missing}")
        return [by_name[o["name"]].astype(np.float32) for o in self.cloud["outputs"]]

    def close(self) -> None:
        self.channel.close()
