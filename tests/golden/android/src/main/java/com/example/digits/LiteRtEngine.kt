package com.example.digits

import org.tensorflow.lite.Interpreter
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * A LiteRT model (the whole model, or the split head) described by its manifest tensor specs; int8/uint8 tensors
 * are (de)quantized with the specs' scale and zero point.
 */
class LiteRtEngine(
    modelBytes: ByteArray,
    private val inputSpecs: List<TensorSpec>,
    private val outputSpecs: List<TensorSpec>,
    numThreads: Int = 1
) : EdgeEngine {
    private val interpreter: Interpreter

    init {
        val model = ByteBuffer.allocateDirect(modelBytes.size).order(ByteOrder.nativeOrder())
        model.put(modelBytes)
        model.rewind()
        interpreter = Interpreter(model, Interpreter.Options().setNumThreads(numThreads))
    }

    override fun run(inputs: List<FloatArray>): List<FloatArray> {
        val feeds = inputSpecs.zip(inputs).map { (spec, values) -> encode(spec, values) }.toTypedArray<Any>()
        val buffers = outputSpecs.map { spec -> ByteBuffer.allocateDirect(spec.sampleSize * width(spec)).order(ByteOrder.nativeOrder()) }
        val outputs = HashMap<Int, Any>()
        buffers.forEachIndexed { i, buffer -> outputs[i] = buffer }
        interpreter.runForMultipleInputsOutputs(feeds, outputs)
        return outputSpecs.zip(buffers).map { (spec, buffer) -> decode(spec, buffer) }
    }

    override fun close() = interpreter.close()

    private fun width(spec: TensorSpec): Int = when (spec.dtype) {
        "int8", "uint8" -> 1
        else -> 4
    }

    private fun encode(spec: TensorSpec, values: FloatArray): ByteBuffer {
        if (values.size != spec.sampleSize) throw IllegalArgumentException("input ${spec.name} needs ${spec.sampleSize} values, got ${values.size}")
        val buffer = ByteBuffer.allocateDirect(values.size * width(spec)).order(ByteOrder.nativeOrder())
        for (v in values) {
            when (spec.dtype) {
                "int8" -> buffer.put(quantize(spec, v, -128, 127).toByte())
                "uint8" -> buffer.put(quantize(spec, v, 0, 255).toByte())
                else -> buffer.putFloat(v)
            }
        }
        buffer.rewind()
        return buffer
    }

    private fun quantize(spec: TensorSpec, v: Float, low: Int, high: Int): Int {
        val q = Math.round(v / spec.scale!!).toInt() + spec.zeroPoint!!.toInt()
        return Math.max(low, Math.min(high, q))
    }

    private fun decode(spec: TensorSpec, buffer: ByteBuffer): FloatArray {
        buffer.rewind()
        return FloatArray(spec.sampleSize) {
            when (spec.dtype) {
                "int8" -> ((buffer.get().toInt() - spec.zeroPoint!!) * spec.scale!!).toFloat()
                "uint8" -> (((buffer.get().toInt() and 0xff) - spec.zeroPoint!!) * spec.scale!!).toFloat()
                else -> buffer.getFloat()
            }
        }
    }
}
