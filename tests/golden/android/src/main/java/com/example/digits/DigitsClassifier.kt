package com.example.digits

import android.content.Context
import android.graphics.Bitmap

/**
 * DigitsClassifier: the bundled `model.tflite` on LiteRT with the manifest's cloud fallback.
 *
 * `predict` blocks (it may call the network): call it off the main thread.
 */
class DigitsClassifier @JvmOverloads constructor(
    context: Context,
    cloudEndpoint: String? = null,
    token: String? = null,
    numThreads: Int = 1
) {
    val manifest: Manifest = Manifest.parse(readAsset(context, "model-manifest.json").toString(Charsets.UTF_8))
    private val predictor: FallbackPredictor

    init {
        val modelBytes = readAsset(context, manifest.model.file)
        val endpoint = cloudEndpoint ?: manifest.cloud.endpoint
        val cloud = if (endpoint == null) null else OipCloudClient(endpoint, manifest.cloud, token)
        val open = { bytes: ByteArray -> LiteRtEngine(bytes, manifest.inputs, manifest.outputs, numThreads) }
        val split = manifest.split?.let { spec ->
            val tail = if (endpoint == null) null else OipCloudClient(endpoint, spec.tail, token)
            SplitParts(readAsset(context, spec.headFile), { bytes -> LiteRtEngine(bytes, spec.headInputSpecs, spec.headOutputSpecs, numThreads) }, tail)
        }
        predictor = FallbackPredictor(manifest, modelBytes, open, cloud, split)
    }

    /** Why the on-device model cannot run (`model_integrity_failed`, `model_load_failed`), or null. */
    val edgeProblem: String? get() = predictor.edgeProblem

    val labels: List<String>? get() = manifest.labels

    /** Predict one sample of 64 floats (shape [1, 8, 8], 4-d with the batch axis). */
    fun predict(input: FloatArray): Prediction = predictor.predict(listOf(input))

    /** Predict from a bitmap, scaled to the model's input and laid out as the manifest says. */
    fun predict(bitmap: Bitmap): Prediction = predict(ImageInput.fromBitmap(bitmap, manifest.preprocessing, manifest.inputs[0]))

    fun close() = predictor.close()

    private companion object {
        fun readAsset(context: Context, name: String): ByteArray = context.assets.open(name).use { it.readBytes() }
    }
}
