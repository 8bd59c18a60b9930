package edgeforge.harness

import com.example.digits.CloudClient
import com.example.digits.CloudFailure
import com.example.digits.EdgeEngine
import com.example.digits.FallbackPredictor
import com.example.digits.Json
import com.example.digits.LiteRtEngine
import com.example.digits.Manifest
import com.example.digits.ManifestException
import com.example.digits.OipCloudClient
import com.example.digits.PredictionError
import java.io.File

// Drives the generated Kotlin SDK on the JVM for the Python tests; prints one JSON object per line.
fun main(args: Array<String>) {
    when (args[0]) {
        "vectors" -> vectors(File(args[1]).readText())
        "cloud" -> cloud(args[1], File(args[2]).readText(), File(args[3]).readBytes(), File(args[4]).readText())
        "manifest" -> println(try { Manifest.parse(File(args[1]).readText()); "{\"ok\": true}" } catch (e: ManifestException) { "{\"error\": ${quote(e.message ?: "")}}" })
        else -> throw IllegalArgumentException("unknown mode ${args[0]}")
    }
}

private fun vectors(text: String) {
    @Suppress("UNCHECKED_CAST")
    val cases = Json.parse(text) as List<Map<String, Any?>>
    for (case in cases) {
        val manifest = Manifest.fromJson(case["manifest"])
        @Suppress("UNCHECKED_CAST") val edge = case["edge"] as Map<String, Any?>
        @Suppress("UNCHECKED_CAST") val outcomes = (case["cloud"] as List<String>?)?.toMutableList()
        val edgeOutputs = floats(case["edge_outputs"])
        val cloudOutputs = floats(case["cloud_outputs"])
        var edgeRuns = 0
        var cloudCalls = 0
        var engineLoaded = false
        val engine = object : EdgeEngine {
            override fun run(inputs: List<FloatArray>): List<FloatArray> {
                edgeRuns++
                if (edge["run"] == "fail") throw IllegalStateException("scripted run failure")
                return listOf(edgeOutputs)
            }
            override fun close() {}
        }
        val cloud = if (outcomes == null) null else object : CloudClient {
            override fun infer(inputs: List<FloatArray>, timeoutMs: Long): List<FloatArray> {
                cloudCalls++
                val outcome = outcomes.removeAt(0)
                if (outcome != "ok") throw CloudFailure(outcome)
                return listOf(cloudOutputs)
            }
            override fun close() {}
        }
        val open = { _: ByteArray ->
            if (edge["load"] == "fail") throw IllegalStateException("scripted load failure")
            engineLoaded = true
            engine
        }
        val predictor = FallbackPredictor(manifest, "scripted edge model".toByteArray(Charsets.UTF_8), open, cloud)
        val fields = LinkedHashMap<String, Any?>()
        fields["name"] = case["name"]
        try {
            val r = predictor.predict(listOf(FloatArray(2)))
            fields["source"] = r.source
            fields["error"] = false
            fields["fallback_reason"] = r.fallbackReason
            fields["low_confidence"] = r.lowConfidence
            fields["cloud_error"] = r.cloudError
            fields["label"] = r.label
            fields["confidence"] = r.confidence
        } catch (e: PredictionError) {
            fields["source"] = null
            fields["error"] = true
        }
        fields["cloud_calls"] = cloudCalls
        fields["edge_runs"] = edgeRuns
        fields["engine_loaded"] = engineLoaded
        println(fields.entries.joinToString(", ", "{", "}") { "${quote(it.key)}: ${literal(it.value)}" })
    }
}

private fun cloud(endpoint: String, manifestText: String, modelBytes: ByteArray, inputText: String) {
    val manifest = Manifest.parse(manifestText)
    val input = inputText.trim().split(",").map { it.toFloat() }.toFloatArray()
    val client = OipCloudClient(endpoint, manifest.cloud)
    val predictor = FallbackPredictor(manifest, modelBytes, { bytes -> LiteRtEngine(bytes, manifest, 1) }, client)
    val r = predictor.predict(listOf(input))
    predictor.close()
    val outputs = r.outputs[0].joinToString(", ", "[", "]")
    println("{\"source\": ${quote(r.source)}, \"fallback_reason\": ${literal(r.fallbackReason)}, \"label\": ${literal(r.label)}, " +
        "\"edge_problem\": ${literal(predictor.edgeProblem)}, \"outputs\": $outputs}")
}

private fun floats(value: Any?): FloatArray = (value as List<*>).map { (it as Number).toFloat() }.toFloatArray()

private fun quote(s: String): String = "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\""

private fun literal(value: Any?): String = when (value) {
    null -> "null"
    is String -> quote(value)
    else -> value.toString()
}
