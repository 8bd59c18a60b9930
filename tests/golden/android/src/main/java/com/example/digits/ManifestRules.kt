package com.example.digits

/**
 * The manifest checks of `model-manifest.schema.json` (schema_version 1), generated from the schema by
 * EdgeForge so that this SDK, the Python SDK (which validates against the schema itself) and the Swift SDK agree.
 */
internal object ManifestRules {
    const val SCHEMA_VERSION = 1L

    val ENUMS: Map<String, List<String>> = mapOf(
        "task" to listOf("classification", "embedding", "regression", "raw"),
        "policy/mode" to listOf("edge", "split", "cloud"),
        "model/format" to listOf("tflite", "onnx"),
        "model/precision" to listOf("fp32", "fp16", "int8-dynamic", "int8-full"),
        "preprocessing/layout" to listOf("NCHW", "NHWC", "NC", "ANY"),
        "postprocessing/activation" to listOf("softmax", "none"),
        "tensor/dtype" to listOf("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool"),
        "oip_tensor/datatype" to listOf("BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64")
    )

    /** Inclusive bounds (null: none); an exclusive minimum is marked. */
    class Bounds(val minimum: Double?, val maximum: Double?, val exclusiveMinimum: Boolean)

    val RANGES: Map<String, Bounds> = mapOf(
        "policy/confidence_threshold" to Bounds(0.0, 1.0, false),
        "policy/timeout_ms" to Bounds(1.0, 600000.0, false),
        "policy/retries" to Bounds(0.0, 10.0, false),
        "preprocessing/pixel_scale" to Bounds(0.0, null, true),
        "preprocessing/channels" to Bounds(1.0, null, false),
        "tensor/shape" to Bounds(1.0, null, false),
        "quantization/scale" to Bounds(0.0, null, true)
    )

    val PATTERNS: Map<String, Regex> = mapOf(
        "name" to Regex("^[A-Z][A-Za-z0-9]*\$"),
        "sha256" to Regex("^[0-9a-f]{64}\$"),
        "file" to Regex("^[A-Za-z0-9._\\-]+(/[A-Za-z0-9._\\-]+)*\$"),
        "cloud/endpoint" to Regex("^[A-Za-z0-9._\\-\\[\\]:]+:[0-9]{1,5}\$"),
        "cloud/model_name" to Regex("^[A-Za-z0-9_.\\-]+\$"),
        "cloud/model_version" to Regex("^[A-Za-z0-9_.\\-]*\$"),
        "split/tail/model_name" to Regex("^[A-Za-z0-9_.\\-]+\$")
    )

    fun oneOf(path: String, rule: String, value: String): String {
        val allowed = ENUMS.getValue(rule)
        if (value !in allowed) throw ManifestException("$path is '$value'; allowed: ${allowed.joinToString(", ")}", path)
        return value
    }

    fun <T : Number> inRange(path: String, rule: String, value: T): T {
        val b = RANGES.getValue(rule)
        val v = value.toDouble()
        val low = b.minimum
        val high = b.maximum
        val tooLow = low != null && (if (b.exclusiveMinimum) v <= low else v < low)
        if (tooLow || (high != null && v > high)) {
            val bounds = "${if (b.exclusiveMinimum) "more than " else ""}${low ?: "-inf"}..${high ?: "inf"}"
            throw ManifestException("$path $value is outside $bounds", path)
        }
        return value
    }

    fun matches(path: String, rule: String, value: String): String {
        if (!PATTERNS.getValue(rule).matches(value)) throw ManifestException("$path '$value' does not match ${PATTERNS.getValue(rule).pattern}", path)
        return value
    }
}
