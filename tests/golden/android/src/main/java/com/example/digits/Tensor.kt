package com.example.digits

/** One sample's values (row-major) and its shape, batch axis of 1 included. */
class Tensor(val values: FloatArray, val shape: IntArray) {
    override fun toString(): String = "Tensor(shape=${shape.toList()}, ${values.size} values)"

    companion object {
        /** [values] in the shape of [spec], its dynamic dimensions taken from [dims] (one per dynamic dimension). */
        @JvmStatic
        fun of(spec: TensorSpec, values: FloatArray, vararg dims: Int): Tensor {
            var next = 0
            val shape = spec.shape.mapIndexed { i, d -> d ?: if (i == 0) 1 else dims.getOrElse(next++) { values.size } }
            return Tensor(values, shape.toIntArray())
        }
    }
}

/** An input that does not fit the manifest (count, shape, or values for the dtype); nothing was run. */
class InvalidInputException(message: String) : IllegalArgumentException(message)

private val INTEGER_RANGES = mapOf(
    "int8" to Pair(-128.0, 127.0), "uint8" to Pair(0.0, 255.0), "int16" to Pair(-32768.0, 32767.0),
    "int32" to Pair(-2147483648.0, 2147483647.0), "int64" to Pair(-9.223372036854776E18, 9.223372036854776E18),
    "bool" to Pair(0.0, 1.0)
)

/**
 * [given] (one tensor per manifest input; the batch axis may be left out) checked against [specs]: count, rank,
 * batch of 1, static dimensions, values filling the shape, whole numbers in range for integer (not quantized)
 * inputs. Returns the tensors with their batch axis; throws [InvalidInputException] naming the input.
 */
fun checkInputs(specs: List<TensorSpec>, given: List<Tensor>): List<Tensor> {
    if (given.size != specs.size) {
        throw InvalidInputException("the model takes ${specs.size} input(s) (${specs.joinToString(", ") { it.name }}), got ${given.size}")
    }
    return specs.zip(given).map { (spec, tensor) -> checkInput(spec, tensor) }
}

private fun checkInput(spec: TensorSpec, tensor: Tensor): Tensor {
    val dims = if (tensor.shape.size == spec.shape.size - 1) intArrayOf(1) + tensor.shape else tensor.shape
    val fits = dims.size == spec.shape.size && dims[0] == 1 &&
        (1 until dims.size).all { i -> dims[i] >= 1 && (spec.shape[i] == null || spec.shape[i] == dims[i]) }
    if (!fits) {
        val wanted = spec.shape.drop(1).map { it?.toString() ?: "n" }
        throw InvalidInputException("input ${spec.name} must have shape $wanted (or [1, ...]), got ${tensor.shape.toList()}")
    }
    val size = dims.fold(1) { acc, d -> acc * d }
    if (tensor.values.size != size) {
        throw InvalidInputException("input ${spec.name} of shape ${dims.toList()} needs $size values, got ${tensor.values.size}")
    }
    val range = INTEGER_RANGES[spec.dtype]
    if (range != null && !spec.quantized) {
        val bad = tensor.values.any { v -> v.isNaN() || v != Math.rint(v.toDouble()).toFloat() || v < range.first || v > range.second }
        if (bad) throw InvalidInputException("input ${spec.name} is ${spec.dtype}: its values must be whole numbers in ${range.first.toLong()}..${range.second.toLong()}")
    }
    return Tensor(tensor.values, dims)
}

/** The one quantizer of every EdgeForge SDK: `clip(round_half_even(x / scale) + zeroPoint)`, the division in float32. */
object Quantize {
    @JvmStatic
    fun levels(values: FloatArray, scale: Double, zeroPoint: Long, dtype: String): IntArray {
        val range = INTEGER_RANGES[dtype] ?: throw IllegalArgumentException("cannot quantize to $dtype")
        val s = scale.toFloat()
        return IntArray(values.size) {
            Math.max(range.first, Math.min(range.second, Math.rint((values[it] / s).toDouble()) + zeroPoint)).toInt()
        }
    }

    @JvmStatic
    fun dequantize(levels: IntArray, scale: Double, zeroPoint: Long): FloatArray =
        FloatArray(levels.size) { ((levels[it] - zeroPoint) * scale.toFloat()).toFloat() }
}
