package com.example.digits

import java.security.MessageDigest

/** Runs one sample on the device: inputs and outputs are float arrays, one per tensor, without a batch axis. */
interface EdgeEngine {
    fun run(inputs: List<FloatArray>): List<FloatArray>
    fun close()
}

/** Runs one sample remotely; throws [CloudFailure] when no answer comes back. */
interface CloudClient {
    fun infer(inputs: List<FloatArray>, timeoutMs: Long): List<FloatArray>
    fun close()
}

/** A cloud call that did not answer; [kind] is `unavailable`, `timeout` or `error`. */
class CloudFailure(val kind: String, detail: String = "") : Exception(if (detail.isEmpty()) kind else "$kind: $detail")

/** Neither the device nor the cloud produced a result; the message says why for each. */
class PredictionError(message: String) : RuntimeException(message)

/** One prediction: where it ran ([source] `edge`, `split` or `cloud`), how long it took, and why it fell back. */
class Prediction(
    val outputs: List<FloatArray>,
    val source: String,
    val latencyMs: Double,
    val label: String?,
    val confidence: Double?,
    val fallbackReason: String?,
    val lowConfidence: Boolean,
    val cloudError: String?
)

/** The device half of split mode: the head model's bytes, how to open them, and the client of the tail model. */
class SplitParts(val headBytes: ByteArray, val openHead: (ByteArray) -> EdgeEngine, val tail: CloudClient?)

/**
 * The manifest's fallback policy over an [EdgeEngine] and an optional [CloudClient] (the same decision table as
 * every EdgeForge SDK): a model whose sha256 does not match is never loaded; load or run failures, confidence below
 * the threshold, or mode `cloud` ask the cloud; mode `split` runs the head here, quantizes its output to int8 with
 * the manifest's scale and zero point and asks the tail model, and when that fails (`split_` + the head's or the
 * tail call's problem) asks the cloud for the whole model; when the cloud fails after its retries, the edge result
 * is returned marked low-confidence if there is one, else [PredictionError] is thrown.
 */
class FallbackPredictor @JvmOverloads constructor(
    private val manifest: Manifest,
    modelBytes: ByteArray,
    openEngine: (ByteArray) -> EdgeEngine,
    private val cloud: CloudClient?,
    split: SplitParts? = null
) {
    val engine: EdgeEngine?
    /** Why the whole model cannot run here (`model_integrity_failed`, `model_load_failed`), or null. */
    val edgeProblem: String?
    val head: EdgeEngine?
    /** Why split mode cannot run its head here (`not_configured`, `model_integrity_failed`, `model_load_failed`), or null. */
    val headProblem: String?
    private val splitSpec: SplitSpec? = if (manifest.policy.mode == "split") manifest.split else null
    private val tail: CloudClient?

    init {
        val opened = openChecked(modelBytes, manifest.model.sha256, openEngine)
        engine = opened.first
        edgeProblem = opened.second
        val spec = splitSpec
        val openedHead = if (spec != null && split != null) openChecked(split.headBytes, spec.headSha256, split.openHead) else Pair(null, "not_configured")
        head = openedHead.first
        headProblem = openedHead.second
        tail = if (spec != null) split?.tail else null
    }

    fun predict(inputs: List<FloatArray>): Prediction {
        val start = System.nanoTime()
        val mode = manifest.policy.mode
        var edge: List<FloatArray>? = null
        val reason: String
        if (mode == "split") {
            val attempt = runSplit(inputs)
            val outputs = attempt.first
            if (outputs != null) return result(outputs, "split", start, null, false, null)
            reason = attempt.second ?: "split_error"
        } else if (mode == "cloud") {
            reason = "mode_cloud"
        } else {
            val attempt = runEdge(inputs)
            edge = attempt.first
            if (edge != null && !isLow(edge)) return result(edge, "edge", start, null, false, null)
            reason = attempt.second ?: "low_confidence"
        }
        val answer = call(cloud, inputs)
        val cloudOutputs = answer.first
        if (cloudOutputs != null) return result(cloudOutputs, "cloud", start, reason, false, null)
        var edgeProblem: String? = reason
        if (edge == null && mode != "edge") {
            val attempt = runEdge(inputs)
            edge = attempt.first
            edgeProblem = attempt.second
        }
        if (edge != null) return result(edge, "edge", start, reason, true, answer.second)
        throw PredictionError("no result: on the device $edgeProblem, and the cloud ${answer.second}")
    }

    fun close() {
        engine?.close()
        head?.close()
        cloud?.close()
        tail?.close()
    }

    /** Head here, int8 over the wire, tail there: (outputs, null) or (null, `split_<problem>`). */
    private fun runSplit(inputs: List<FloatArray>): Pair<List<FloatArray>?, String?> {
        val spec = splitSpec ?: return Pair(null, "split_not_configured")
        val current = head ?: return Pair(null, "split_$headProblem")
        val middle = try {
            current.run(spec.headInputs.map { inputs[it] })[0]
        } catch (e: Exception) {
            return Pair(null, "split_edge_run_failed")
        }
        val sent = quantizeInt8(middle, spec.intermediate.scale!!, spec.intermediate.zeroPoint!!)
        val answer = call(tail, listOf(sent) + spec.sideInputs.map { inputs[it] })
        return if (answer.first != null) answer else Pair(null, "split_${answer.second}")
    }

    private fun runEdge(inputs: List<FloatArray>): Pair<List<FloatArray>?, String?> {
        val current = engine ?: return Pair(null, edgeProblem)
        return try {
            Pair(current.run(inputs), null)
        } catch (e: Exception) {
            Pair(null, "edge_run_failed")
        }
    }

    private fun call(client: CloudClient?, inputs: List<FloatArray>): Pair<List<FloatArray>?, String?> {
        if (client == null) return Pair(null, "not_configured")
        var error = "error"
        for (attempt in 0..manifest.policy.retries) {
            try {
                return Pair(client.infer(inputs, manifest.policy.timeoutMs), null)
            } catch (failure: CloudFailure) {
                error = failure.kind
            }
        }
        return Pair(null, error)
    }

    private fun isLow(outputs: List<FloatArray>): Boolean {
        val threshold = manifest.policy.confidenceThreshold ?: return false
        return manifest.task == "classification" && topClass(outputs).second < threshold
    }

    private fun result(outputs: List<FloatArray>, source: String, start: Long, reason: String?, low: Boolean, cloudError: String?): Prediction {
        val top = if (manifest.task == "classification") topClass(outputs) else null
        val latencyMs = (System.nanoTime() - start) / 1e6
        return Prediction(outputs, source, latencyMs, top?.first, top?.second, reason, low, cloudError)
    }

    /** (label, probability) of the most likely class in output 0, after the manifest's activation. */
    fun topClass(outputs: List<FloatArray>): Pair<String, Double> {
        val scores = outputs[0].map { it.toDouble() }
        val probs = if (manifest.softmax) {
            val max = scores.fold(Double.NEGATIVE_INFINITY) { a, b -> Math.max(a, b) }
            val exps = scores.map { Math.exp(it - max) }
            val sum = exps.sum()
            exps.map { it / sum }
        } else scores
        var best = 0
        for (i in probs.indices) if (probs[i] > probs[best]) best = i
        return Pair(manifest.labels!![best], probs[best])
    }
}

/** (engine, null), or (null, `model_integrity_failed` / `model_load_failed`): a mismatch is never loaded. */
internal fun openChecked(bytes: ByteArray, sha256: String, open: (ByteArray) -> EdgeEngine): Pair<EdgeEngine?, String?> {
    if (sha256Hex(bytes) != sha256) return Pair(null, "model_integrity_failed")
    return try {
        Pair(open(bytes), null)
    } catch (e: Exception) {
        Pair(null, "model_load_failed")
    } catch (e: LinkageError) {
        Pair(null, "model_load_failed")
    }
}

/**
 * `clip(round_half_even(x / scale) + zeroPoint, -128, 127)` with the division in float32 (as the Python SDK and the
 * compressor compute it), as floats holding the int8 values that are sent as INT8.
 */
fun quantizeInt8(values: FloatArray, scale: Double, zeroPoint: Long): FloatArray {
    val s = scale.toFloat()
    return FloatArray(values.size) { Math.max(-128.0, Math.min(127.0, Math.rint((values[it] / s).toDouble()) + zeroPoint)).toFloat() }
}

internal fun sha256Hex(bytes: ByteArray): String =
    MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { String.format("%02x", it.toInt() and 0xff) }
