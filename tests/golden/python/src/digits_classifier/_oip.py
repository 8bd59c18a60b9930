"""Open Inference Protocol v2 messages in a descriptor pool of this package's own.

The messages are built from the bundled ``assets/oip/grpc_service.pb`` (the compiled ``grpc_service.proto``) in a
private :class:`~google.protobuf.descriptor_pool.DescriptorPool`, never in protobuf's default pool, so this SDK
imports beside ``tritonclient.grpc``, a server's own stubs or a second EdgeForge SDK, all of which define the same
``inference.*`` names.  On the wire nothing changes: the method is still ``/inference.GRPCInferenceService/ModelInfer``.
"""

from __future__ import annotations

from importlib import resources

from google.protobuf import __version__ as _protobuf_version
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PROTOBUF_FLOOR = "4.25"  # message_factory.GetMessageClass on any pool (pyproject's floor too)
METHOD = "/inference.GRPCInferenceService/ModelInfer"


def _check_protobuf() -> None:
    have = tuple(int(p) for p in _protobuf_version.split(".")[:2] if p.isdigit())
    need = tuple(int(p) for p in PROTOBUF_FLOOR.split("."))
    if have < need or not hasattr(message_factory, "GetMessageClass"):
        raise ImportError(f"{__package__} needs protobuf>={PROTOBUF_FLOOR}; this environment has {_protobuf_version}")


def _pool() -> descriptor_pool.DescriptorPool:
    data = resources.files(__package__).joinpath("assets/oip/grpc_service.pb").read_bytes()
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(data).file:
        pool.Add(file)
    return pool


_check_protobuf()
POOL = _pool()
ModelInferRequest = message_factory.GetMessageClass(POOL.FindMessageTypeByName("inference.ModelInferRequest"))
ModelInferResponse = message_factory.GetMessageClass(POOL.FindMessageTypeByName("inference.ModelInferResponse"))


def model_infer(channel):
    """The unary ``ModelInfer`` callable on ``channel``, (de)serializing with this package's message classes."""
    return channel.unary_unary(
        METHOD,
        request_serializer=ModelInferRequest.SerializeToString,
        response_deserializer=ModelInferResponse.FromString,
    )
