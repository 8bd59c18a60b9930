package com.example.digits

import com.google.protobuf.ByteString
import io.grpc.CallCredentials
import io.grpc.ChannelCredentials
import io.grpc.Context
import io.grpc.InsecureChannelCredentials
import io.grpc.ManagedChannel
import io.grpc.Metadata
import io.grpc.Status
import io.grpc.StatusRuntimeException
import io.grpc.TlsChannelCredentials
import io.grpc.okhttp.OkHttpChannelBuilder
import com.example.digits.oip.GRPCInferenceServiceGrpc
import com.example.digits.oip.GrpcService.ModelInferRequest
import java.io.InputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.concurrent.CancellationException
import java.util.concurrent.Executor
import java.util.concurrent.TimeUnit

/** How to reach the server: TLS unless the host is loopback (or [tls] says otherwise), an optional custom CA. */
class CloudSecurity @JvmOverloads constructor(
    val tls: Boolean? = null,
    val caCertPem: ByteArray? = null
) {
    fun usesTls(endpoint: Endpoint): Boolean = tls ?: !endpoint.isLoopback
}

/** `HOST:PORT` or `[IPv6]:PORT`. */
class Endpoint(val host: String, val port: Int) {
    val target: String get() = if (host.contains(':')) "[$host]:$port" else "$host:$port"

    /** localhost, 127.0.0.0/8 or ::1. */
    val isLoopback: Boolean
        get() = host.equals("localhost", ignoreCase = true) || host == "::1" ||
            (host.startsWith("127.") && host.split('.').let { p -> p.size == 4 && p.all { it.toIntOrNull() in 0..255 } })

    override fun toString(): String = target

    companion object {
        @JvmStatic
        fun parse(text: String): Endpoint {
            val colon = text.lastIndexOf(':')
            val port = if (colon > 0) text.substring(colon + 1).toIntOrNull() else null
            if (port == null || port !in 1..65535) throw IllegalArgumentException("cloud endpoint '$text' is not HOST:PORT")
            return Endpoint(text.substring(0, colon).removePrefix("[").removeSuffix("]"), port)
        }
    }
}

/** The bearer token as call credentials: attached per call, never part of a message or a log line. */
private class BearerToken(private val token: String) : CallCredentials() {
    override fun applyRequestMetadata(info: RequestInfo, executor: Executor, applier: MetadataApplier) {
        val headers = Metadata()
        headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer $token")
        applier.apply(headers)
    }

    override fun thisUsesUnstableApi() {}

    override fun toString(): String = "BearerToken(***)"
}

/**
 * Open Inference Protocol v2 `/inference.GRPCInferenceService/ModelInfer` over grpc-okhttp, with raw little-endian contents in each
 * tensor's datatype and each tensor's own shape (dynamic dimensions as given). A token goes only over TLS or to
 * loopback.
 */
class OipCloudClient @JvmOverloads constructor(
    endpoint: String,
    private val cloud: CloudSpec,
    token: String? = null,
    security: CloudSecurity = CloudSecurity()
) : CloudClient {
    private val channel: ManagedChannel
    private val stub: GRPCInferenceServiceGrpc.GRPCInferenceServiceBlockingStub

    init {
        val target = Endpoint.parse(endpoint)
        val tls = security.usesTls(target)
        if (token != null && !tls && !target.isLoopback) {
            throw IllegalArgumentException("a token is sent only over TLS or to a loopback endpoint; $target has TLS off")
        }
        channel = OkHttpChannelBuilder.forTarget(target.target, credentials(tls, security.caCertPem)).build()
        val plain = GRPCInferenceServiceGrpc.newBlockingStub(channel)
        stub = if (token == null) plain else plain.withCallCredentials(BearerToken(token))
    }

    override fun infer(inputs: List<Tensor>, timeoutMs: Long, cancellation: Cancellation): List<Tensor> {
        val request = ModelInferRequest.newBuilder().setModelName(cloud.modelName).setModelVersion(cloud.modelVersion)
        cloud.inputs.zip(inputs).forEach { (spec, tensor) ->
            request.addInputs(
                ModelInferRequest.InferInputTensor.newBuilder().setName(spec.name).setDatatype(spec.datatype)
                    .addAllShape(tensor.shape.map { it.toLong() })
            )
            request.addRawInputContents(ByteString.copyFrom(encode(spec, tensor.values)))
        }
        val context = Context.current().withCancellation()
        val hook = cancellation.onCancel(Runnable { context.cancel(null) })
        val response = try {
            context.call { stub.withDeadlineAfter(timeoutMs, TimeUnit.MILLISECONDS).modelInfer(request.build()) }
        } catch (e: StatusRuntimeException) {
            throw failure(e, cancellation)
        } finally {
            hook.close()
            context.cancel(null)
        }
        val byName = HashMap<String, Tensor>()
        response.outputsList.zip(response.rawOutputContentsList).forEach { (tensor, raw) ->
            byName[tensor.name] = Tensor(decode(tensor.name, tensor.datatype, raw), tensor.shapeList.map { it.toInt() }.toIntArray())
        }
        return cloud.outputs.map { byName[it.name] ?: throw CloudFailure(CloudError.ERROR, "response lacks output ${it.name}") }
    }

    override fun close() {
        channel.shutdownNow()
    }

    override fun toString(): String = "OipCloudClient(${cloud.modelName})"

    private fun failure(e: StatusRuntimeException, cancellation: Cancellation): Exception {
        val code = e.status.code
        if (code == Status.Code.CANCELLED && (cancellation.isCancelled || Thread.currentThread().isInterrupted)) {
            return CancellationException("the call to ${cloud.modelName} was cancelled")
        }
        val kind = when (code) {
            Status.Code.DEADLINE_EXCEEDED -> CloudError.TIMEOUT
            Status.Code.UNAVAILABLE -> CloudError.UNAVAILABLE
            else -> CloudError.ERROR
        }
        return CloudFailure(kind, "$code: ${e.status.description ?: ""}")
    }

    private fun encode(spec: OipTensor, values: FloatArray): ByteArray {
        val width = WIDTHS[spec.datatype] ?: throw CloudFailure(CloudError.ERROR, "input ${spec.name} has datatype ${spec.datatype}; supported: ${WIDTHS.keys}")
        val bytes = ByteBuffer.allocate(values.size * width).order(ByteOrder.LITTLE_ENDIAN)
        for (v in values) {
            when (spec.datatype) {
                "FP32" -> bytes.putFloat(v)
                "FP64" -> bytes.putDouble(v.toDouble())
                "INT64" -> bytes.putLong(v.toLong())
                "INT32" -> bytes.putInt(v.toInt())
                "INT16" -> bytes.putShort(v.toInt().toShort())
                else -> bytes.put(v.toInt().toByte())
            }
        }
        return bytes.array()
    }

    private fun decode(name: String, datatype: String, raw: ByteString): FloatArray {
        val width = WIDTHS[datatype] ?: throw CloudFailure(CloudError.ERROR, "output $name has datatype $datatype; supported: ${WIDTHS.keys}")
        val buffer = raw.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN)
        return FloatArray(raw.size() / width) {
            when (datatype) {
                "FP32" -> buffer.getFloat()
                "FP64" -> buffer.getDouble().toFloat()
                "INT64" -> buffer.getLong().toFloat()
                "INT32" -> buffer.getInt().toFloat()
                "INT16" -> buffer.getShort().toFloat()
                "UINT8", "BOOL" -> (buffer.get().toInt() and 0xff).toFloat()
                else -> buffer.get().toFloat()
            }
        }
    }

    private companion object {
        val WIDTHS = mapOf("FP32" to 4, "FP64" to 8, "INT64" to 8, "INT32" to 4, "INT16" to 2, "INT8" to 1, "UINT8" to 1, "BOOL" to 1)

        fun credentials(tls: Boolean, caCertPem: ByteArray?): ChannelCredentials {
            if (!tls) return InsecureChannelCredentials.create()
            val builder = TlsChannelCredentials.newBuilder()
            if (caCertPem != null) builder.trustManager(caCertPem.inputStream() as InputStream)
            return builder.build()
        }
    }
}
