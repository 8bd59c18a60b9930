package com.example.digits

import java.io.Closeable
import java.security.MessageDigest
import java.util.concurrent.CancellationException
import java.util.concurrent.CopyOnWriteArrayList

/** Runs one sample on the device: one tensor per model input and output, batch axis of 1 included. */
interface EdgeEngine : Closeable {
    fun run(inputs: List<Tensor>): List<Tensor>
}

/** Runs one sample remotely; throws [CloudFailure] when no answer comes back, [CancellationException] when cancelled. */
interface CloudClient : Closeable {
    fun infer(inputs: List<Tensor>, timeoutMs: Long, cancellation: Cancellation): List<Tensor>
}

/** A model file as the engine opens it; [sha256] reads it once, in chunks, to check it before it is opened. */
interface ModelSource {
    fun sha256(): String
}

/** Model bytes already in memory (tests, downloaded models). */
class BytesSource(val bytes: ByteArray) : ModelSource {
    override fun sha256(): String = hex(MessageDigest.getInstance("SHA-256").digest(bytes))
}

enum class Source(val code: String) { EDGE("edge"), SPLIT("split"), CLOUD("cloud") }

/** Why the cloud did not answer. */
enum class CloudError(val code: String) { UNAVAILABLE("unavailable"), TIMEOUT("timeout"), ERROR("error"), NOT_CONFIGURED("not_configured") }

/** Why a model (the whole model or the split head) cannot run here. */
enum class EdgeProblem(val code: String) {
    MODEL_INTEGRITY_FAILED("model_integrity_failed"), MODEL_LOAD_FAILED("model_load_failed"),
    EDGE_RUN_FAILED("edge_run_failed"), NOT_CONFIGURED("not_configured")
}

/** Why a prediction did not come from its first choice; [code] is the name shared by every EdgeForge SDK. */
sealed class FallbackReason(val code: String) {
    object LowConfidence : FallbackReason("low_confidence")
    object ModeCloud : FallbackReason("mode_cloud")
    class EdgeFailed(val problem: EdgeProblem) : FallbackReason(problem.code)
    class SplitFailed(val headProblem: EdgeProblem?, val tailError: CloudError?) :
        FallbackReason("split_" + (headProblem?.code ?: tailError?.code ?: "error"))

    override fun toString(): String = code
}

/** A cloud call that did not answer. */
class CloudFailure(val kind: CloudError, detail: String = "") : Exception(if (detail.isEmpty()) kind.code else "${kind.code}: $detail")

/** Neither the device nor the cloud produced a result; the message says why for each. */
class PredictionError(message: String) : RuntimeException(message)

/** Cancels one prediction: the call under way is cancelled and nothing is retried or asked elsewhere. */
class Cancellation {
    @Volatile
    var isCancelled: Boolean = false
        private set
    private val hooks = CopyOnWriteArrayList<Runnable>()

    fun cancel() {
        isCancelled = true
        for (hook in hooks) hook.run()
    }

    /** Run [hook] on [cancel] (now, if already cancelled); the returned handle unregisters it. */
    fun onCancel(hook: Runnable): Closeable {
        hooks.add(hook)
        if (isCancelled) hook.run()
        return Closeable { hooks.remove(hook) }
    }

    fun throwIfCancelled() {
        if (isCancelled) throw CancellationException("the prediction was cancelled")
    }
}

/** One prediction: where it ran, how long it took, and why it fell back. */
class Prediction(
    val outputs: List<Tensor>,
    val source: Source,
    val latencyMs: Double,
    val label: String?,
    val confidence: Double?,
    val fallbackReason: FallbackReason?,
    val lowConfidence: Boolean,
    val cloudError: CloudError?
)

/** The device half of split mode: the head model, how to open it, and the client of the tail model. */
class SplitParts(val head: ModelSource, val openHead: (ModelSource) -> EdgeEngine, val tail: CloudClient?)

/**
 * The manifest's fallback policy over an [EdgeEngine] and an optional [CloudClient] (the decision table of every
 * EdgeForge SDK, `tests/vectors/fallback.json`): inputs are checked before anything runs; a model whose sha256
 * does not match is never opened; load or run failures (any exception, native-library errors included),
 * confidence below the threshold, or mode `cloud` ask the cloud; mode `split` runs the head here, quantizes its
 * output to int8 and asks the tail model, then the cloud for the whole model; when the cloud fails after its
 * retries, the edge result is returned marked low-confidence if there is one, else [PredictionError] is thrown.
 * A cancelled prediction throws [CancellationException] and is not retried. Safe to call from several threads:
 * each engine runs one sample at a time.
 */
class FallbackPredictor @JvmOverloads constructor(
    private val manifest: Manifest,
    model: ModelSource,
    openEngine: (ModelSource) -> EdgeEngine,
    private val cloud: CloudClient?,
    split: SplitParts? = null
) : Closeable {
    private val engine: EdgeEngine?
    /** Why the whole model cannot run here, or null. */
    val edgeProblem: EdgeProblem?
    private val head: EdgeEngine?
    /** Why split mode cannot run its head here, or null. */
    val headProblem: EdgeProblem?
    private val splitSpec: SplitSpec? = if (manifest.policy.mode == Mode.SPLIT) manifest.split else null
    private val tail: CloudClient?
    @Volatile
    private var closed = false

    init {
        val opened = openChecked(model, manifest.model.sha256, openEngine)
        engine = opened.first
        edgeProblem = opened.second
        val spec = splitSpec
        val openedHead = if (spec != null && split != null) openChecked(split.head, spec.headSha256, split.openHead) else Pair(null, EdgeProblem.NOT_CONFIGURED)
        head = openedHead.first
        headProblem = openedHead.second
        tail = if (spec != null) split?.tail else null
    }

    /** Predict one sample; throws [InvalidInputException], [PredictionError] or [CancellationException]. */
    @JvmOverloads
    fun predict(given: List<Tensor>, cancellation: Cancellation = Cancellation()): Prediction {
        if (closed) throw IllegalStateException("${manifest.name} is closed")
        val inputs = checkInputs(manifest.inputs, given)
        val start = System.nanoTime()
        val mode = manifest.policy.mode
        var edge: List<Tensor>? = null
        val reason: FallbackReason
        if (mode == Mode.SPLIT) {
            val attempt = runSplit(inputs, cancellation)
            val outputs = attempt.first
            if (outputs != null) return result(outputs, Source.SPLIT, start, null, false, null)
            reason = attempt.second ?: FallbackReason.SplitFailed(null, CloudError.ERROR)
        } else if (mode == Mode.CLOUD) {
            reason = FallbackReason.ModeCloud
        } else {
            val attempt = runEdge(inputs)
            edge = attempt.first
            if (edge != null && !isLow(edge)) return result(edge, Source.EDGE, start, null, false, null)
            val problem = attempt.second
            reason = if (problem != null) FallbackReason.EdgeFailed(problem) else FallbackReason.LowConfidence
        }
        val answer = call(cloud, inputs, cancellation)
        val cloudOutputs = answer.first
        if (cloudOutputs != null) return result(cloudOutputs, Source.CLOUD, start, reason, false, null)
        var edgeProblem: String? = reason.code
        if (edge == null && mode != Mode.EDGE) {
            val attempt = runEdge(inputs)
            edge = attempt.first
            edgeProblem = attempt.second?.code
        }
        if (edge != null) return result(edge, Source.EDGE, start, reason, true, answer.second)
        throw PredictionError("no result: on the device $edgeProblem, and the cloud ${answer.second?.code}")
    }

    override fun close() {
        closed = true
        for (c in listOf(engine, head, cloud, tail)) {
            try {
                c?.close()
            } catch (e: Exception) {
                // closing is best effort: one failing part must not keep the others open
            }
        }
    }

    /** Head here, int8 over the wire, tail there: (outputs, null) or (null, the split failure). */
    private fun runSplit(inputs: List<Tensor>, cancellation: Cancellation): Pair<List<Tensor>?, FallbackReason?> {
        val spec = splitSpec ?: return Pair(null, FallbackReason.SplitFailed(EdgeProblem.NOT_CONFIGURED, null))
        val current = head ?: return Pair(null, FallbackReason.SplitFailed(headProblem, null))
        val middle = guarded(current, spec.headInputs.map { inputs[it] })?.get(0)
            ?: return Pair(null, FallbackReason.SplitFailed(EdgeProblem.EDGE_RUN_FAILED, null))
        val q = spec.intermediate
        val levels = Quantize.levels(middle.values, q.scale!!, q.zeroPoint!!, "int8")
        val sent = Tensor(FloatArray(levels.size) { levels[it].toFloat() }, middle.shape)
        val answer = call(tail, listOf(sent) + spec.sideInputs.map { inputs[it] }, cancellation)
        return if (answer.first != null) Pair(answer.first, null) else Pair(null, FallbackReason.SplitFailed(null, answer.second))
    }

    private fun runEdge(inputs: List<Tensor>): Pair<List<Tensor>?, EdgeProblem?> {
        val current = engine ?: return Pair(null, edgeProblem)
        val outputs = guarded(current, inputs) ?: return Pair(null, EdgeProblem.EDGE_RUN_FAILED)
        return Pair(outputs, null)
    }

    /** One run at a time per engine (LiteRT's models are not thread-safe); null when it fails in any way. */
    private fun guarded(engine: EdgeEngine, inputs: List<Tensor>): List<Tensor>? = synchronized(engine) {
        try {
            engine.run(inputs)
        } catch (e: Exception) {
            null
        } catch (e: LinkageError) {
            null
        }
    }

    private fun call(client: CloudClient?, inputs: List<Tensor>, cancellation: Cancellation): Pair<List<Tensor>?, CloudError?> {
        if (client == null) return Pair(null, CloudError.NOT_CONFIGURED)
        var error = CloudError.ERROR
        for (attempt in 0..manifest.policy.retries) {
            cancellation.throwIfCancelled()
            try {
                return Pair(client.infer(inputs, manifest.policy.timeoutMs, cancellation), null)
            } catch (e: CancellationException) {
                throw e
            } catch (failure: CloudFailure) {
                error = failure.kind
            } catch (e: Exception) {
                error = CloudError.ERROR  // a client bug is the cloud not answering, not the app's crash
            }
        }
        return Pair(null, error)
    }

    private fun isLow(outputs: List<Tensor>): Boolean {
        val threshold = manifest.policy.confidenceThreshold ?: return false
        return manifest.task == "classification" && topClass(outputs).second < threshold
    }

    private fun result(outputs: List<Tensor>, source: Source, start: Long, reason: FallbackReason?, low: Boolean, cloudError: CloudError?): Prediction {
        val top = if (manifest.task == "classification") topClass(outputs) else null
        val latencyMs = (System.nanoTime() - start) / 1e6
        return Prediction(outputs, source, latencyMs, top?.first, top?.second, reason, low, cloudError)
    }

    /** (label, probability) of the most likely class in output 0, after the manifest's activation. */
    fun topClass(outputs: List<Tensor>): Pair<String, Double> {
        val scores = outputs[0].values.map { it.toDouble() }
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

/** (engine, null), or (null, why not): a mismatching model is never opened; any failure to open counts. */
internal fun openChecked(source: ModelSource, sha256: String, open: (ModelSource) -> EdgeEngine): Pair<EdgeEngine?, EdgeProblem?> {
    val digest = try {
        source.sha256()
    } catch (e: java.io.IOException) {
        return Pair(null, EdgeProblem.MODEL_LOAD_FAILED)
    }
    if (digest != sha256) return Pair(null, EdgeProblem.MODEL_INTEGRITY_FAILED)
    return try {
        Pair(open(source), null)
    } catch (e: Exception) {
        Pair(null, EdgeProblem.MODEL_LOAD_FAILED)
    } catch (e: LinkageError) {
        Pair(null, EdgeProblem.MODEL_LOAD_FAILED)
    }
}

internal fun hex(digest: ByteArray): String = digest.joinToString("") { String.format("%02x", it.toInt() and 0xff) }
