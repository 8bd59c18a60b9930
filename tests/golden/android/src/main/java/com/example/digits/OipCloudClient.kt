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

/**
 * Open Inference Protocol v2 `ModelInfer` over gRPC with raw little-endian contents in each tensor's datatype
 * (FP32 for whole models; INT8 for a split tail's intermediate, whose floats already hold the int8 values).
 */
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
                ModelInferRequest.InferInputTensor.newBuilder().setName(spec.name).setDatatype(spec.datatype).addAllShape(shape)
            )
            request.addRawInputContents(ByteString.copyFrom(encode(spec, values)))
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
            byName[tensor.name] = decode(tensor.name, tensor.datatype, raw)
        }
        return cloud.outputs.map { byName[it.name] ?: throw CloudFailure("error", "response lacks output ${it.name}") }
    }

    private fun encode(spec: OipTensor, values: FloatArray): ByteArray {
        val width = WIDTHS[spec.datatype] ?: throw CloudFailure("error", "input ${spec.name} has datatype ${spec.datatype}; supported: ${WIDTHS.keys}")
        val bytes = ByteBuffer.allocate(values.size * width).order(ByteOrder.LITTLE_ENDIAN)
        for (v in values) {
            when (spec.datatype) {
                "FP32" -> bytes.putFloat(v)
                "FP64" -> bytes.putDouble(v.toDouble())
                "INT64" -> bytes.putLong(v.toLong())
                "INT32" -> bytes.putInt(v.toInt())
                else -> bytes.put(v.toInt().toByte())
            }
        }
        return bytes.array()
    }

    private fun decode(name: String, datatype: String, raw: ByteString): FloatArray {
        val width = WIDTHS[datatype] ?: throw CloudFailure("error", "output $name has datatype $datatype; supported: ${WIDTHS.keys}")
        val buffer = raw.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN)
        return FloatArray(raw.size() / width) {
            when (datatype) {
                "FP32" -> buffer.getFloat()
                "FP64" -> buffer.getDouble().toFloat()
                "INT64" -> buffer.getLong().toFloat()
                "INT32" -> buffer.getInt().toFloat()
                "UINT8", "BOOL" -> (buffer.get().toInt() and 0xff).toFloat()
                else -> buffer.get().toFloat()
            }
        }
    }

    override fun close() {
        channel.shutdownNow()
    }
}

private val WIDTHS = mapOf("FP32" to 4, "FP64" to 8, "INT64" to 8, "INT32" to 4, "INT8" to 1, "UINT8" to 1, "BOOL" to 1)
