package com.example.digits

import com.google.protobuf.ByteString
import inference.GRPCInferenceServiceGrpc
import inference.GrpcService.ModelInferRequest
import io.grpc.ManagedChannel
import io.grpc.ManagedChannelBuilder
import io.grpc.Metadata
import io.grpc.Status
import io.grpc.StatusRuntimeException
import io.grpc.stub.MetadataUtils
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.concurrent.TimeUnit

/** Open Inference Protocol v2 `ModelInfer` over gRPC with raw little-endian FP32 contents. */
class OipCloudClient(endpoint: String, private val cloud: CloudSpec, token: String? = null, useTls: Boolean = false) : CloudClient {
    private val channel: ManagedChannel
    private val stub: GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub

    init {
        val builder = ManagedChannelBuilder.forTarget(endpoint)
        if (useTls) builder.useTransportSecurity() else builder.usePlaintext()
        channel = builder.build()
        val plain = GRPCInferenceServiceGrpc.newBlockingStub(channel)
        stub = if (token == null) plain else {
            val headers = Metadata()
            headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer $token")
            plain.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers))
        }
    }

    override fun infer(inputs: List<FloatArray>, timeoutMs: Long): List<FloatArray> {
        val request = ModelInferRequest.newBuilder().setModelName(cloud.modelName).setModelVersion(cloud.modelVersion)
        cloud.inputs.zip(inputs).forEach { (spec, values) ->
            val shape = listOf(1L) + spec.shape.drop(1).map { (it ?: 1).toLong() }
            request.addInputs(
                ModelInferRequest.InferInputTensor.newBuilder().setName(spec.name).setDatatype("FP32").addAllShape(shape)
            )
            val bytes = ByteBuffer.allocate(values.size * 4).order(ByteOrder.LITTLE_ENDIAN)
            for (v in values) bytes.putFloat(v)
            request.addRawInputContents(ByteString.copyFrom(bytes.array()))
        }
        val response = try {
            stub.withDeadlineAfter(timeoutMs, TimeUnit.MILLISECONDS).modelInfer(request.build())
        } catch (e: StatusRuntimeException) {
            val kind = when (e.status.code) {
                Status.Code.DEADLINE_EXCEEDED -> "timeout"
                Status.Code.UNAVAILABLE -> "unavailable"
                else -> "error"
            }
            throw CloudFailure(kind, e.status.toString())
        }
        val byName = HashMap<String, FloatArray>()
        response.outputsList.zip(response.rawOutputContentsList).forEach { (tensor, raw) ->
            if (tensor.datatype != "FP32") throw CloudFailure("error", "output ${tensor.name} is ${tensor.datatype}, expected FP32")
            val buffer = raw.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN)
            byName[tensor.name] = FloatArray(raw.size() / 4) { buffer.getFloat() }
        }
        return cloud.outputs.map { byName[it.name] ?: throw CloudFailure("error", "response lacks output ${it.name}") }
    }

    override fun close() {
        channel.shutdownNow()
    }
}
