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
import com.example.digits.SplitParts
import java.io.File

// Drives the generated Kotlin SDK on the JVM for the Python tests; prints one JSON object per line.
fun main(args: Array<String>) {
    when (args[0]) {
        "vectors" -> vectors(File(args[1]).readText())
        "cloud" -> cloud(args[1], File(args[2]).readText(), File(args[3]).readBytes(), File(args[4]).readText())
        "split" -> split(args[1], File(args[2]).readText(), File(args[3]).readBytes(), File(args[4]).readBytes(), File(args[5]).readText())
        "manifest" -> println(try { Manifest.parse(File(args[1]).readText()); "{\"ok\": true}" } catch (e: ManifestException) { "{\"error\": ${quote(e.message ?: "")}}" })
        else -> throw IllegalArgumentException("unknown mode ${args[0]}")
    }
}

/** Counts runs, loads and calls of the scripted engines and clients, and keeps the tail's first input. */
private class Counters {
    val runs = HashMap<String, Int>()
    val loaded = HashMap<String, Boolean>()
    val calls = HashMap<String, Int>()
    var tailSent: FloatArray? = null
}

@Suppress("UNCHECKED_CAST")
private fun scriptedEngine(script: Map<String, Any?>, outputs: FloatArray, counters: Counters, key: String): (ByteArray) -> EdgeEngine {
    val engine = object : EdgeEngine {
        override fun run(inputs: List<FloatArray>): List<FloatArray> {
            counters.runs[key] = (counters.runs[key] ?: 0) + 1
            if (script["run"] == "fail") throw IllegalStateException("scripted run failure")
            return listOf(outputs)
        }
        override fun close() {}
    }
    return { _: ByteArray ->
        if (script["load"] == "fail") throw IllegalStateException("scripted load failure")
        counters.loaded[key] = true
        engine
    }
}

@Suppress("UNCHECKED_CAST")
private fun scriptedClient(script: Any?, outputs: FloatArray, counters: Counters, key: String): CloudClient? {
    val outcomes = (script as List<String>?)?.toMutableList() ?: return null
    return object : CloudClient {
        override fun infer(inputs: List<FloatArray>, timeoutMs: Long): List<FloatArray> {
            counters.calls[key] = (counters.calls[key] ?: 0) + 1
            if (key == "tail") counters.tailSent = inputs[0]
            val outcome = outcomes.removeAt(0)
            if (outcome != "ok") throw CloudFailure(outcome)
            return listOf(outputs)
        }
        override fun close() {}
    }
}

private fun vectors(text: String) {
    @Suppress("UNCHECKED_CAST")
    val cases = Json.parse(text) as List<Map<String, Any?>>
    for (case in cases) {
        val manifest = Manifest.fromJson(case["manifest"])
        val counters = Counters()
        @Suppress("UNCHECKED_CAST") val edge = case["edge"] as Map<String, Any?>
        val cloud = scriptedClient(case["cloud"], floats(case["cloud_outputs"]), counters, "cloud")
        @Suppress("UNCHECKED_CAST") val head = case["head"] as Map<String, Any?>?
        val split = if (head == null) null else SplitParts(
            "scripted head model".toByteArray(Charsets.UTF_8), scriptedEngine(head, floats(case["head_outputs"]), counters, "head"),
            scriptedClient(case["tail"], floats(case["tail_outputs"]), counters, "tail")
        )
        val open = scriptedEngine(edge, floats(case["edge_outputs"]), counters, "edge")
        val predictor = FallbackPredictor(manifest, "scripted edge model".toByteArray(Charsets.UTF_8), open, cloud, split)
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
        fields["cloud_calls"] = counters.calls["cloud"] ?: 0
        fields["edge_runs"] = counters.runs["edge"] ?: 0
        fields["engine_loaded"] = counters.loaded["edge"] ?: false
        fields["head_runs"] = counters.runs["head"] ?: 0
        fields["head_loaded"] = counters.loaded["head"] ?: false
        fields["tail_calls"] = counters.calls["tail"] ?: 0
        fields["tail_sent"] = counters.tailSent?.map { it.toInt() }
        println(fields.entries.joinToString(", ", "{", "}") { "${quote(it.key)}: ${literal(it.value)}" })
    }
}

private fun cloud(endpoint: String, manifestText: String, modelBytes: ByteArray, inputText: String) {
    val manifest = Manifest.parse(manifestText)
    val input = inputText.trim().split(",").map { it.toFloat() }.toFloatArray()
    val client = OipCloudClient(endpoint, manifest.cloud)
    val predictor = FallbackPredictor(manifest, modelBytes, { bytes -> LiteRtEngine(bytes, manifest.inputs, manifest.outputs, 1) }, client)
    val r = predictor.predict(listOf(input))
    predictor.close()
    val outputs = r.outputs[0].joinToString(", ", "[", "]")
    println("{\"source\": ${quote(r.source)}, \"fallback_reason\": ${literal(r.fallbackReason)}, \"label\": ${literal(r.label)}, " +
        "\"edge_problem\": ${literal(predictor.edgeProblem)}, \"outputs\": $outputs}")
}

/**
 * Split mode as the generated SDK class wires it (tail = [OipCloudClient] on the manifest's tail spec, no cloud), over
 * the real server; the head engine replays the head's outputs computed off the JVM (one line per sample), since
 * LiteRT is a stub here. The policy quantizes them, the client sends them as INT8; prints what went and came back.
 */
private fun split(endpoint: String, manifestText: String, modelBytes: ByteArray, headBytes: ByteArray, middleText: String) {
    val manifest = Manifest.parse(manifestText)
    val spec = manifest.split ?: throw IllegalArgumentException("the manifest has no split section")
    for (line in middleText.trim().lines()) {
        val middle = line.split(",").map { it.toFloat() }.toFloatArray()
        val replay = { _: ByteArray ->
            object : EdgeEngine {
                override fun run(inputs: List<FloatArray>): List<FloatArray> = listOf(middle)
                override fun close() {}
            }
        }
        val sent = ArrayList<FloatArray>()
        val client = OipCloudClient(endpoint, spec.tail)
        val tail = object : CloudClient {
            override fun infer(inputs: List<FloatArray>, timeoutMs: Long): List<FloatArray> {
                sent.add(inputs[0])
                return client.infer(inputs, timeoutMs)
            }
            override fun close() = client.close()
        }
        val open = { bytes: ByteArray -> LiteRtEngine(bytes, manifest.inputs, manifest.outputs, 1) }
        val predictor = FallbackPredictor(manifest, modelBytes, open, null, SplitParts(headBytes, replay, tail))
        val fields = LinkedHashMap<String, Any?>()
        try {
            val r = predictor.predict(manifest.inputs.map { FloatArray(it.sampleSize) })
            fields["source"] = r.source
            fields["label"] = r.label
            fields["outputs"] = r.outputs[0].toList()
        } catch (e: PredictionError) {
            fields["error"] = e.message
        }
        fields["head_problem"] = predictor.headProblem
        fields["sent"] = sent.map { values -> values.map { it.toInt() } }
        predictor.close()
        println(fields.entries.joinToString(", ", "{", "}") { "${quote(it.key)}: ${literal(it.value)}" })
    }
}

private fun floats(value: Any?): FloatArray = (value as List<*>).map { (it as Number).toFloat() }.toFloatArray()

private fun quote(s: String): String = "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\""

private fun literal(value: Any?): String = when (value) {
    null -> "null"
    is String -> quote(value)
    is List<*> -> value.joinToString(", ", "[", "]") { literal(it) }
    else -> value.toString()
}
