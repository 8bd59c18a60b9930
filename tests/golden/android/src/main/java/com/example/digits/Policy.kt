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

/**
 * The manifest's fallback policy over an [EdgeEngine] and an optional [CloudClient] (the same decision table as
 * every EdgeForge SDK): a model whose sha256 does not match is never loaded; load or run failures, confidence below
 * the threshold, or mode `cloud` ask the cloud; when the cloud fails after its retries, the edge result is returned
 * marked low-confidence if there is one, else [PredictionError] is thrown.
 */
class FallbackPredictor(
    private val manifest: Manifest,
    modelBytes: ByteArray,
    openEngine: (ByteArray) -> EdgeEngine,
    private val cloud: CloudClient?
) {
    var engine: EdgeEngine? = null
        private set
    var edgeProblem: String? = null
        private set

    init {
        if (sha256Hex(modelBytes) != manifest.model.sha256) {
            edgeProblem = "model_integrity_failed"
        } else {
            try {
                engine = openEngine(modelBytes)
            } catch (e: Exception) {
                edgeProblem = "model_load_failed"
            } catch (e: LinkageError) {
                edgeProblem = "model_load_failed"
            }
        }
    }

    fun predict(inputs: List<FloatArray>): Prediction {
        val start = System.nanoTime()
        val cloudMode = manifest.policy.mode == "cloud"
        var edge: List<FloatArray>? = null
        var reason: String? = "mode_cloud"
        if (!cloudMode) {
            val attempt = runEdge(inputs)
            edge = attempt.first
            reason = attempt.second
            if (edge != null && !isLow(edge)) return result(edge, "edge", start, null, false, null)
        }
        val why = reason ?: "low_confidence"
        val answer = askCloud(inputs)
        if (answer.first != null) return result(answer.first!!, "cloud", start, why, false, null)
        var edgeProblem: String? = why
        if (edge == null && cloudMode) {
            val attempt = runEdge(inputs)
            edge = attempt.first
            edgeProblem = attempt.second
        }
        if (edge != null) return result(edge, "edge", start, why, true, answer.second)
        throw PredictionError("no result: on the device $edgeProblem, and the cloud ${answer.second}")
    }

    fun close() {
        engine?.close()
        cloud?.close()
    }

    private fun runEdge(inputs: List<FloatArray>): Pair<List<FloatArray>?, String?> {
        val current = engine ?: return Pair(null, edgeProblem)
        return try {
            Pair(current.run(inputs), null)
        } catch (e: Exception) {
            Pair(null, "edge_run_failed")
        }
    }

    private fun askCloud(inputs: List<FloatArray>): Pair<List<FloatArray>?, String?> {
        val client = cloud ?: return Pair(null, "not_configured")
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

internal fun sha256Hex(bytes: ByteArray): String =
    MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { String.format("%02x", it.toInt() and 0xff) }
