"""GRPCInferenceService (OIP v2): thin proto <-> repository glue."""

from __future__ import annotations

from collections.abc import Callable

from server.admission import ByteBudget
from server.auth import tenant
from server.errors import NotFoundError
from server.gen.inference import grpc_service_pb2 as pb
from server.gen.inference import grpc_service_pb2_grpc as rpc
from server.inference.batcher import Batcher
from server.inference.codec import feeds_from, fill_response
from server.inference.repository import ModelRepository

SERVER_NAME = "edgeforge"
DEFAULT_ROWS, DEFAULT_ELEMENTS, DEFAULT_BUDGET = 256, 4 << 20, 512 << 20


class InferenceServicer(rpc.GRPCInferenceServiceServicer):
    def __init__(
        self,
        repository: ModelRepository,
        version: str,
        batcher: Batcher | None = None,
        limits: Callable[[str], tuple[int, int]] | None = None,
        budget: ByteBudget | None = None,
    ) -> None:
        self.repository, self.version, self.batcher = repository, version, batcher or Batcher()
        self.limits = limits or (lambda _name: (DEFAULT_ROWS, DEFAULT_ELEMENTS))
        self.budget = budget or ByteBudget(DEFAULT_BUDGET)

    def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=True)

    def ModelReady(self, request, context):
        try:
            self.repository.get(request.name, request.version, tenant())
        except NotFoundError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=self.version, extensions=["model_repository"])

    def ModelMetadata(self, request, context):
        model = self.repository.get(request.name, request.version, tenant())
        meta = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=model.name,
            versions=self.repository.versions(model.name, tenant()),
            platform="onnxruntime_onnx",
            inputs=[meta(name=s.name, datatype=s.datatype, shape=s.shape) for s in model.inputs],
            outputs=[meta(name=s.name, datatype=s.datatype, shape=s.shape) for s in model.outputs],
        )

    def ModelInfer(self, request, context):
        size = request.ByteSize()
        self.budget.reserve(size)  # bounded memory: past the budget a call is refused, not queued
        try:
            model = self.repository.get(request.model_name, request.model_version, tenant())
            feeds, names = feeds_from(model, request, *self.limits(model.name))
            outputs = self.batcher.run(model, feeds, names)
            return fill_response(pb.ModelInferResponse(), model, request.id, names, outputs)
        finally:
            self.budget.release(size)


def add_to_server(servicer: InferenceServicer, server) -> str:
    """Register the servicer; return its full service name (for health and reflection)."""
    rpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    return pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
