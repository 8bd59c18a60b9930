package com.example.digits

import android.content.res.AssetManager
import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.CompiledModel
import com.google.ai.edge.litert.TensorBuffer
import java.security.MessageDigest

/** A model in the app's assets: LiteRT maps it from the APK; [sha256] streams it once in 64 KiB chunks. */
class AssetSource(val assets: AssetManager, val name: String) : ModelSource {
    override fun sha256(): String {
        val digest = MessageDigest.getInstance("SHA-256")
        assets.open(name).use { stream ->
            val chunk = ByteArray(64 * 1024)
            while (true) {
                val n = stream.read(chunk)
                if (n < 0) break
                digest.update(chunk, 0, n)
            }
        }
        return hex(digest.digest())
    }
}

/**
 * A LiteRT `CompiledModel` (the whole model, or the split head) from the assets, on the first accelerator set that
 * compiles it: GPU then CPU (from the profile's delegates; CPU is the fallback). int8/uint8 tensors
 * are (de)quantized with the manifest's scale and zero point. Not thread-safe: [FallbackPredictor] runs it one
 * sample at a time.
 */
class LiteRtEngine(
    source: AssetSource,
    private val inputSpecs: List<TensorSpec>,
    private val outputSpecs: List<TensorSpec>
) : EdgeEngine {
    private val model: CompiledModel
    private val inputBuffers: List<TensorBuffer>
    private val outputBuffers: List<TensorBuffer>

    /** The accelerators the model was compiled for. */
    val accelerators: List<Accelerator>

    init {
        var failure: Exception? = null
        var compiled: Pair<CompiledModel, List<Accelerator>>? = null
        for (choice in ACCELERATOR_CHOICES) {
            try {
                compiled = Pair(CompiledModel.create(source.assets, source.name, CompiledModel.Options(*choice.toTypedArray())), choice)
                break
            } catch (e: Exception) {
                failure = e
            }
        }
        val (m, used) = compiled ?: throw failure ?: IllegalStateException("no accelerator compiled ${source.name}")
        model = m
        accelerators = used
        inputBuffers = model.createInputBuffers()
        outputBuffers = model.createOutputBuffers()
    }

    override fun run(inputs: List<Tensor>): List<Tensor> {
        inputSpecs.zip(inputs).forEachIndexed { i, (spec, tensor) ->
            if (spec.shape.any { it == null }) throw UnsupportedOperationException("input ${spec.name} has dynamic dimensions; LiteRT compiled it with fixed ones")
            write(inputBuffers[i], spec, tensor.values)
        }
        model.run(inputBuffers, outputBuffers)
        return outputSpecs.mapIndexed { i, spec -> Tensor(read(outputBuffers[i], spec), spec.shape.map { it ?: 1 }.toIntArray()) }
    }

    override fun close() {
        for (buffer in inputBuffers + outputBuffers) buffer.close()
        model.close()
    }

    private fun write(buffer: TensorBuffer, spec: TensorSpec, values: FloatArray) {
        when {
            spec.quantized && (spec.dtype == "int8" || spec.dtype == "uint8") -> {
                val levels = Quantize.levels(values, spec.scale!!, spec.zeroPoint!!, spec.dtype)
                buffer.writeInt8(ByteArray(levels.size) { levels[it].toByte() })
            }
            spec.dtype == "int32" -> buffer.writeInt(IntArray(values.size) { values[it].toInt() })
            spec.dtype == "int64" -> buffer.writeLong(LongArray(values.size) { values[it].toLong() })
            spec.dtype == "bool" -> buffer.writeBoolean(BooleanArray(values.size) { values[it] != 0f })
            else -> buffer.writeFloat(values)
        }
    }

    private fun read(buffer: TensorBuffer, spec: TensorSpec): FloatArray = when {
        spec.quantized && (spec.dtype == "int8" || spec.dtype == "uint8") -> {
            val bytes = buffer.readInt8()
            val mask = if (spec.dtype == "uint8") 0xff else -1
            Quantize.dequantize(IntArray(bytes.size) { if (mask == -1) bytes[it].toInt() else bytes[it].toInt() and mask }, spec.scale!!, spec.zeroPoint!!)
        }
        spec.dtype == "int32" -> buffer.readInt().let { v -> FloatArray(v.size) { v[it].toFloat() } }
        spec.dtype == "int64" -> buffer.readLong().let { v -> FloatArray(v.size) { v[it].toFloat() } }
        else -> buffer.readFloat()
    }

    private companion object {
        val ACCELERATOR_CHOICES: List<List<Accelerator>> = listOf(
            listOf(Accelerator.GPU, Accelerator.CPU),
            listOf(Accelerator.CPU)
        )
    }
}
