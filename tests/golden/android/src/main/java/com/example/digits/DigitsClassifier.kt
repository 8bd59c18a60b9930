package com.example.digits

import android.content.Context
import android.graphics.Bitmap
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import java.io.Closeable

/**
 * DigitsClassifier: the bundled `model.tflite` on LiteRT with the manifest's cloud fallback.
 *
 * `predict` suspends and runs on [dispatcher] (cancelling the coroutine cancels the call); `predictBlocking` is for
 * Java and background threads. One instance may be shared by threads; [close] it when done. TLS is on unless the
 * endpoint is loopback; [security] turns it on or off and sets a custom CA.
 */
class DigitsClassifier @JvmOverloads constructor(
    context: Context,
    cloudEndpoint: String? = null,
    token: String? = null,
    security: CloudSecurity = CloudSecurity(),
    private val dispatcher: CoroutineDispatcher = Dispatchers.IO
) : Closeable {
    val manifest: Manifest = Manifest.parse(context.assets.open("model-manifest.json").use { it.readBytes() }.toString(Charsets.UTF_8))
    private val predictor: FallbackPredictor

    init {
        val assets = context.assets
        val endpoint = cloudEndpoint ?: manifest.cloud.endpoint
        val cloud = if (endpoint == null) null else OipCloudClient(endpoint, manifest.cloud, token, security)
        val open = { source: ModelSource -> LiteRtEngine(source as AssetSource, manifest.inputs, manifest.outputs) }
        val split = manifest.split?.let { spec ->
            val tail = if (endpoint == null) null else OipCloudClient(endpoint, spec.tail, token, security)
            SplitParts(AssetSource(assets, spec.headFile), { source -> LiteRtEngine(source as AssetSource, spec.headInputSpecs, spec.headOutputSpecs) }, tail)
        }
        predictor = FallbackPredictor(manifest, AssetSource(assets, manifest.model.file), open, cloud, split)
    }

    /** Why the on-device model cannot run, or null. */
    val edgeProblem: EdgeProblem? get() = predictor.edgeProblem

    val labels: List<String>? get() = manifest.labels

    /** Predict one sample: one [Tensor] per model input (serving_default_args_0 [1, 1, 8, 8]). */
    suspend fun predict(inputs: List<Tensor>): Prediction = predictor.predictSuspending(inputs, dispatcher)

    /** Predict 64 floats of input serving_default_args_0 (shape [1, 8, 8]). */
    suspend fun predict(input: FloatArray): Prediction = predict(listOf(Tensor.of(manifest.inputs[0], input)))

    /** Predict from a bitmap of any size and config (resized, luma for one channel, scaled, laid out). */
    suspend fun predict(bitmap: Bitmap): Prediction = predict(listOf(ImageInput.fromBitmap(bitmap, manifest.preprocessing, manifest.inputs[0])))

    /** The blocking form of [predict]: call it off the main thread; [cancellation] cancels it. */
    @JvmOverloads
    fun predictBlocking(inputs: List<Tensor>, cancellation: Cancellation = Cancellation()): Prediction = predictor.predict(inputs, cancellation)

    override fun close() = predictor.close()
}
