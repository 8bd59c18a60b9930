package com.example.digits

import org.json.JSONArray
import org.json.JSONException
import org.json.JSONObject

/** The manifest is missing a field, holds a wrong value, or has another schema version; [field] is its path. */
class ManifestException(message: String, val field: String = "") : IllegalArgumentException(message)

/** A model tensor as the manifest describes it; `null` dimensions are dynamic (their size comes with the input). */
class TensorSpec(val name: String, val shape: List<Int?>, val dtype: String, val scale: Double?, val zeroPoint: Long?) {
    val quantized: Boolean get() = scale != null
}

class OipTensor(val name: String, val datatype: String, val shape: List<Int?>)

/** The bundled model file; [belowGate]: the build shipped it although it missed the accuracy gate (an integer-only
 * target's closest candidate; the build report says what was lost). */
class ModelFile(val file: String, val sha256: String, val format: String, val precision: String, val belowGate: Boolean)

enum class Mode { EDGE, SPLIT, CLOUD }

class Policy(val mode: Mode, val confidenceThreshold: Double?, val timeoutMs: Long, val retries: Int)

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

/** The bundled model-manifest.json, checked on load with the schema's rules ([ManifestRules]). */
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
        /** Parse and check [text]; throws [ManifestException] naming the field. */
        fun parse(text: String): Manifest {
            val root = try {
                JSONObject(text)
            } catch (e: JSONException) {
                throw ManifestException("model-manifest.json is not a JSON object: ${e.message}")
            }
            return fromJson(root)
        }

        fun fromJson(root: JSONObject): Manifest {
            val f = Fields(root, "")
            val version = f.long("schema_version")
            if (version != ManifestRules.SCHEMA_VERSION) {
                throw ManifestException("schema_version is $version; this SDK reads ${ManifestRules.SCHEMA_VERSION}", "schema_version")
            }
            val task = f.oneOf("task", "task")
            val policy = policy(f.obj("policy"))
            val outputs = tensors(f, "outputs")
            val labels = f.stringListOrNull("labels")
            if (task == "classification") {
                if (labels == null) throw ManifestException("labels: a classifier needs labels", "labels")
                if (policy.confidenceThreshold == null) {
                    throw ManifestException("policy/confidence_threshold: a classifier needs a threshold", "policy/confidence_threshold")
                }
                val width = outputs[0].shape.last()
                if (width != null && width != labels.size) throw ManifestException("labels: ${labels.size} labels for $width classes", "labels")
            }
            val split = f.objOrNull("split")
            if (policy.mode == Mode.SPLIT && split == null) throw ManifestException("split: mode split needs a split section", "split")
            val pre = f.obj("preprocessing")
            return Manifest(
                name = f.matches("name", "name"),
                task = task,
                model = modelFile(f.obj("model")),
                inputs = tensors(f, "inputs"),
                outputs = outputs,
                labels = labels,
                preprocessing = Preprocessing(
                    pre.oneOf("layout", "preprocessing/layout"),
                    pre.double("pixel_scale", "preprocessing/pixel_scale"),
                    pre.double("pixel_offset"),
                    pre.longOrNull("channels", "preprocessing/channels")?.toInt()
                ),
                softmax = f.obj("postprocessing").oneOf("activation", "postprocessing/activation") == "softmax",
                policy = policy,
                cloud = cloudSpec(f.obj("cloud"), true),
                split = if (split == null) null else splitSpec(split)
            )
        }

        private fun policy(p: Fields): Policy {
            val name = p.oneOf("mode", "policy/mode")
            val mode = Mode.values().first { it.name.equals(name, ignoreCase = true) }
            return Policy(
                mode,
                p.doubleOrNull("confidence_threshold", "policy/confidence_threshold"),
                p.long("timeout_ms", "policy/timeout_ms"),
                p.long("retries", "policy/retries").toInt()
            )
        }

        private fun modelFile(m: Fields) = ModelFile(
            m.matches("file", "file"), m.matches("sha256", "sha256"),
            m.oneOf("format", "model/format"), m.oneOf("precision", "model/precision"),
            m.booleanOr("below_gate", false)
        )

        private fun splitSpec(f: Fields): SplitSpec {
            val head = f.obj("head")
            val intermediate = tensor(f.obj("intermediate"))
            if (intermediate.dtype != "int8" || intermediate.scale == null) {
                throw ManifestException("split/intermediate must be int8 with a quantization", "split/intermediate")
            }
            return SplitSpec(
                f.string("cut"), head.matches("file", "file"), head.matches("sha256", "sha256"),
                tensors(head, "inputs"), tensors(head, "outputs"),
                f.indices("head_inputs"), f.indices("side_inputs"), intermediate, cloudSpec(f.obj("tail"), false)
            )
        }

        /** The cloud model (with its endpoint) or the split tail (served beside it, no endpoint of its own). */
        private fun cloudSpec(f: Fields, hasEndpoint: Boolean): CloudSpec = CloudSpec(
            if (hasEndpoint) f.stringOrNull("endpoint")?.let { f.matches("endpoint", "cloud/endpoint") } else null,
            f.matches("model_name", if (hasEndpoint) "cloud/model_name" else "split/tail/model_name"),
            f.matches("model_version", "cloud/model_version"),
            (0 until f.list("inputs").length()).map { i -> oip(f.item("inputs", i)) },
            (0 until f.list("outputs").length()).map { i -> oip(f.item("outputs", i)) }
        )

        private fun tensors(f: Fields, key: String): List<TensorSpec> = (0 until f.list(key).length()).map { i -> tensor(f.item(key, i)) }

        private fun tensor(f: Fields): TensorSpec {
            val q = f.objOrNull("quantization")
            return TensorSpec(
                f.string("name"), f.shape("shape", "tensor/shape"), f.oneOf("dtype", "tensor/dtype"),
                q?.double("scale", "quantization/scale"), q?.long("zero_point")
            )
        }

        private fun oip(f: Fields): OipTensor = OipTensor(f.string("name"), f.oneOf("datatype", "oip_tensor/datatype"), f.shape("shape", null))
    }
}

/** Typed access to one JSON object (org.json, which Android ships); every miss names the field path. */
internal class Fields(private val json: JSONObject, val path: String) {
    private fun where(key: String) = if (path.isEmpty()) key else "$path/$key"

    private fun present(key: String): Any? {
        if (!json.has(key)) throw ManifestException("${where(key)} is required", where(key))
        val value = json.get(key)
        return if (value == JSONObject.NULL) null else value
    }

    private fun required(key: String): Any = present(key) ?: throw ManifestException("${where(key)} must not be null", where(key))

    private fun wrong(key: String, what: String): Nothing = throw ManifestException("${where(key)} is not $what", where(key))

    fun string(key: String): String = required(key) as? String ?: wrong(key, "a string")
    fun stringOrNull(key: String): String? = if (present(key) == null) null else string(key)

    fun long(key: String, rule: String? = null): Long {
        val value = required(key)
        val n = if (value is Int || value is Long) (value as Number).toLong() else wrong(key, "an integer")
        return if (rule == null) n else ManifestRules.inRange(where(key), rule, n)
    }

    fun longOrNull(key: String, rule: String? = null): Long? = if (present(key) == null) null else long(key, rule)

    fun double(key: String, rule: String? = null): Double {
        val n = (required(key) as? Number)?.toDouble() ?: wrong(key, "a number")
        return if (rule == null) n else ManifestRules.inRange(where(key), rule, n)
    }

    /** An optional boolean: [default] when the key is absent. */
    fun booleanOr(key: String, default: Boolean): Boolean =
        if (!json.has(key)) default else required(key) as? Boolean ?: wrong(key, "a boolean")

    fun doubleOrNull(key: String, rule: String? = null): Double? = if (present(key) == null) null else double(key, rule)
    fun obj(key: String): Fields = Fields(required(key) as? JSONObject ?: wrong(key, "an object"), where(key))
    fun objOrNull(key: String): Fields? = if (present(key) == null) null else obj(key)

    fun list(key: String): JSONArray {
        val list = required(key) as? JSONArray ?: wrong(key, "an array")
        if (list.length() == 0) throw ManifestException("${where(key)} is empty", where(key))
        return list
    }

    fun item(key: String, i: Int): Fields =
        Fields(list(key).get(i) as? JSONObject ?: throw ManifestException("${where(key)}/$i is not an object", "${where(key)}/$i"), "${where(key)}/$i")

    fun stringListOrNull(key: String): List<String>? {
        if (present(key) == null) return null
        val list = list(key)
        return (0 until list.length()).map { list.get(it) as? String ?: wrong(key, "a list of strings") }
    }

    fun indices(key: String): List<Int> {
        val list = required(key) as? JSONArray ?: wrong(key, "an array")
        return (0 until list.length()).map { i -> (list.get(i) as? Int) ?: wrong(key, "a list of integers") }
    }

    fun shape(key: String, rule: String?): List<Int?> {
        val list = list(key)
        return (0 until list.length()).map { i ->
            val d = list.get(i)
            when {
                d == JSONObject.NULL -> null
                d is Int -> if (rule == null) d else ManifestRules.inRange("${where(key)}/$i", rule, d)
                else -> wrong(key, "a list of integers and nulls")
            }
        }
    }

    fun oneOf(key: String, rule: String): String = ManifestRules.oneOf(where(key), rule, string(key))
    fun matches(key: String, rule: String): String = ManifestRules.matches(where(key), rule, string(key))
}
