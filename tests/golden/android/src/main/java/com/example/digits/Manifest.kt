package com.example.digits

/** The manifest is missing a field, holds a wrong value, or has another schema version; the message names the field. */
class ManifestException(message: String) : IllegalArgumentException(message)

class TensorSpec(val name: String, val shape: List<Int?>, val dtype: String, val scale: Double?, val zeroPoint: Long?) {
    /** Elements in one sample (batch axis dropped, dynamic dimensions read as 1). */
    val sampleSize: Int get() = shape.drop(1).fold(1) { acc, d -> acc * (d ?: 1) }
}

class OipTensor(val name: String, val datatype: String, val shape: List<Int?>)

class ModelFile(val file: String, val sha256: String, val format: String, val precision: String)

class Policy(val mode: String, val confidenceThreshold: Double?, val timeoutMs: Long, val retries: Int)

class CloudSpec(
    val endpoint: String?,
    val modelName: String,
    val modelVersion: String,
    val inputs: List<OipTensor>,
    val outputs: List<OipTensor>
)

/** The device half of split mode: the head model, which model inputs it takes, and what goes over the wire. */
class SplitSpec(
    val cut: String,
    val headFile: String,
    val headSha256: String,
    val headInputSpecs: List<TensorSpec>,
    val headOutputSpecs: List<TensorSpec>,
    val headInputs: List<Int>,
    val sideInputs: List<Int>,
    val intermediate: TensorSpec,
    val tail: CloudSpec
)

class Preprocessing(val layout: String, val pixelScale: Double, val pixelOffset: Double, val channels: Int?)

/** The bundled model-manifest.json (schema_version 1), checked field by field on load. */
class Manifest(
    val name: String,
    val task: String,
    val model: ModelFile,
    val inputs: List<TensorSpec>,
    val outputs: List<TensorSpec>,
    val labels: List<String>?,
    val preprocessing: Preprocessing,
    val softmax: Boolean,
    val policy: Policy,
    val cloud: CloudSpec,
    val split: SplitSpec?
) {
    companion object {
        const val SCHEMA_VERSION = 1L
        private val TASKS = listOf("classification", "embedding", "regression", "raw")
        private val MODES = listOf("edge", "split", "cloud")
        private val SHA256 = Regex("^[0-9a-f]{64}$")

        fun parse(text: String): Manifest = fromJson(Json.parse(text))

        fun fromJson(value: Any?): Manifest {
            val root = Fields(value, "")
            val version = root.long("schema_version")
            if (version != SCHEMA_VERSION) throw ManifestException("schema_version is $version; this SDK reads $SCHEMA_VERSION")
            val task = root.oneOf("task", TASKS)
            val model = root.obj("model")
            val sha = model.string("sha256")
            if (!SHA256.matches(sha)) throw ManifestException("model/sha256 is not 64 lowercase hex digits")
            val policy = root.obj("policy")
            val mode = policy.oneOf("mode", MODES)
            val threshold = policy.doubleOrNull("confidence_threshold")
            if (threshold != null && (threshold < 0.0 || threshold > 1.0)) throw ManifestException("policy/confidence_threshold $threshold is outside 0..1")
            val outputs = root.list("outputs").mapIndexed { i, t -> tensor(Fields(t, "outputs/$i")) }
            val labels = root.stringListOrNull("labels")
            if (task == "classification") {
                if (labels == null) throw ManifestException("labels: a classifier needs labels")
                if (threshold == null) throw ManifestException("policy/confidence_threshold: a classifier needs a threshold")
                val width = outputs[0].shape.last()
                if (width != null && width != labels.size) throw ManifestException("labels: ${labels.size} labels for $width classes")
            }
            val split = root.objOrNull("split")
            if (mode == "split" && split == null) throw ManifestException("split: mode split needs a split section")
            val cloud = cloudSpec(root.obj("cloud"), true)
            val pre = root.obj("preprocessing")
            return Manifest(
                name = root.string("name"),
                task = task,
                model = ModelFile(model.string("file"), sha, model.oneOf("format", listOf("tflite", "onnx")), model.string("precision")),
                inputs = root.list("inputs").mapIndexed { i, t -> tensor(Fields(t, "inputs/$i")) },
                outputs = outputs,
                labels = labels,
                preprocessing = Preprocessing(pre.string("layout"), pre.double("pixel_scale"), pre.double("pixel_offset"), pre.longOrNull("channels")?.toInt()),
                softmax = root.obj("postprocessing").oneOf("activation", listOf("softmax", "none")) == "softmax",
                policy = Policy(mode, threshold, policy.long("timeout_ms"), policy.long("retries").toInt()),
                cloud = cloud,
                split = if (split == null) null else splitSpec(split)
            )
        }

        private fun splitSpec(f: Fields): SplitSpec {
            val head = f.obj("head")
            val sha = head.string("sha256")
            if (!SHA256.matches(sha)) throw ManifestException("split/head/sha256 is not 64 lowercase hex digits")
            val intermediate = tensor(f.obj("intermediate"))
            if (intermediate.dtype != "int8" || intermediate.scale == null) throw ManifestException("split/intermediate must be int8 with a quantization")
            return SplitSpec(
                f.string("cut"), head.string("file"), sha,
                head.list("inputs").mapIndexed { i, t -> tensor(Fields(t, "${head.path}/inputs/$i")) },
                head.list("outputs").mapIndexed { i, t -> tensor(Fields(t, "${head.path}/outputs/$i")) },
                f.indices("head_inputs"), f.indices("side_inputs"), intermediate, cloudSpec(f.obj("tail"), false)
            )
        }

        /** The cloud model (with its endpoint) or the split tail (served beside it, no endpoint of its own). */
        private fun cloudSpec(f: Fields, hasEndpoint: Boolean): CloudSpec = CloudSpec(
            if (hasEndpoint) f.stringOrNull("endpoint") else null, f.string("model_name"), f.string("model_version"),
            f.list("inputs").mapIndexed { i, t -> oip(Fields(t, "${f.path}/inputs/$i")) },
            f.list("outputs").mapIndexed { i, t -> oip(Fields(t, "${f.path}/outputs/$i")) }
        )

        private fun tensor(f: Fields): TensorSpec {
            val q = f.objOrNull("quantization")
            return TensorSpec(f.string("name"), f.shape("shape"), f.string("dtype"), q?.double("scale"), q?.long("zero_point"))
        }

        private fun oip(f: Fields): OipTensor = OipTensor(f.string("name"), f.string("datatype"), f.shape("shape"))
    }
}

/** Typed access to one JSON object; every miss names the field path. */
internal class Fields(value: Any?, val path: String) {
    @Suppress("UNCHECKED_CAST")
    val map: Map<String, Any?> = value as? Map<String, Any?> ?: throw ManifestException("${where("")} is not an object")

    private fun where(key: String) = if (path.isEmpty()) (if (key.isEmpty()) "(top level)" else key) else if (key.isEmpty()) path else "$path/$key"

    private fun present(key: String) {
        if (!map.containsKey(key)) throw ManifestException("${where(key)} is required")
    }

    private fun required(key: String): Any {
        present(key)
        return map[key] ?: throw ManifestException("${where(key)} must not be null")
    }

    fun string(key: String): String = required(key) as? String ?: throw ManifestException("${where(key)} is not a string")
    fun stringOrNull(key: String): String? = if (map[key] == null) { present(key); null } else string(key)
    fun long(key: String): Long = required(key) as? Long ?: throw ManifestException("${where(key)} is not an integer")
    fun longOrNull(key: String): Long? = if (map[key] == null) { present(key); null } else long(key)
    fun double(key: String): Double = (required(key) as? Number)?.toDouble() ?: throw ManifestException("${where(key)} is not a number")
    fun doubleOrNull(key: String): Double? = if (map[key] == null) { present(key); null } else double(key)
    fun obj(key: String): Fields = Fields(required(key), where(key))
    fun objOrNull(key: String): Fields? = if (map[key] == null) { present(key); null } else obj(key)
    fun list(key: String): List<Any?> {
        val list = required(key) as? List<*> ?: throw ManifestException("${where(key)} is not an array")
        if (list.isEmpty()) throw ManifestException("${where(key)} is empty")
        return list
    }

    fun stringListOrNull(key: String): List<String>? =
        if (map[key] == null) { present(key); null } else list(key).map { it as? String ?: throw ManifestException("${where(key)} holds a non-string") }

    fun indices(key: String): List<Int> {
        val list = required(key) as? List<*> ?: throw ManifestException("${where(key)} is not an array")
        return list.map { (it as? Long)?.toInt() ?: throw ManifestException("${where(key)} holds a non-integer") }
    }

    fun shape(key: String): List<Int?> = list(key).map { d -> if (d == null) null else (d as? Long)?.toInt() ?: throw ManifestException("${where(key)} holds a non-integer") }

    fun oneOf(key: String, allowed: List<String>): String {
        val value = string(key)
        if (value !in allowed) throw ManifestException("${where(key)} is '$value'; allowed: ${allowed.joinToString(", ")}")
        return value
    }
}
