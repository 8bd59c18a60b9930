package edgeforge.harness

import android.content.res.AssetManager
import com.example.digits.AssetSource
import com.example.digits.BytesSource
import com.example.digits.Cancellation
import com.example.digits.CloudClient
import com.example.digits.CloudError
import com.example.digits.CloudFailure
import com.example.digits.CloudSecurity
import com.example.digits.EdgeEngine
import com.example.digits.FallbackPredictor
import com.example.digits.InvalidInputException
import com.example.digits.LiteRtEngine
import com.example.digits.Manifest
import com.example.digits.ManifestException
import com.example.digits.ModelSource
import com.example.digits.OipCloudClient
import com.example.digits.PredictionError
import com.example.digits.Quantize
import com.example.digits.SplitParts
import com.example.digits.Tensor
import com.example.digits.predictSuspending
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.json.JSONArray
import org.json.JSONObject
import java.io.File
import java.net.ServerSocket
import java.util.concurrent.CancellationException
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit

// Drives the generated Kotlin SDK on the JVM for the Python tests; prints one JSON object per line.
fun main(args: Array<String>) {
    when (args[0]) {
        "vectors" -> vectors(JSONArray(File(args[1]).readText()))
        "quantize" -> quantize(JSONArray(File(args[1]).readText()))
        "cloud" -> cloud(args[1], File(args[2]).readText(), File(args[3]).readBytes(), File(args[4]).readText(), null, null)
        "tls" -> cloud(args[1], File(args[2]).readText(), File(args[3]).readBytes(), File(args[4]).readText(), File(args[5]).readBytes(), args[6])
        "split" -> split(args[1], File(args[2]).readText(), File(args[3]).readBytes(), File(args[4]).readBytes(), File(args[5]).readText())
        "cancel" -> cancel(File(args[1]).readText())
        "manifest" -> println(
            try {
                "{\"ok\": true, \"below_gate\": ${Manifest.parse(File(args[1]).readText()).model.belowGate}}"
            } catch (e: ManifestException) {
                "{\"error\": ${JSONObject.quote(e.message ?: "")}, \"field\": ${JSONObject.quote(e.field)}}"
            }
        )
        else -> throw IllegalArgumentException("unknown mode ${args[0]}")
    }
}

/** Counts runs, loads and calls of the scripted engines and clients; keeps what the tail and the cloud got. */
private class Counters {
    val runs = HashMap<String, Int>()
    val loaded = HashMap<String, Boolean>()
    val calls = HashMap<String, Int>()
    var tailSent: FloatArray? = null
    var cloudShapes: List<List<Int>>? = null
}

private fun scriptedEngine(script: JSONObject, outputs: FloatArray, counters: Counters, key: String): (ModelSource) -> EdgeEngine {
    val engine = object : EdgeEngine {
        override fun run(inputs: List<Tensor>): List<Tensor> {
            counters.runs[key] = (counters.runs[key] ?: 0) + 1
            if (script.getString("run") == "fail") throw IllegalStateException("scripted run failure")
            if (script.getString("run") == "crash") throw UnsatisfiedLinkError("scripted native-library failure")
            return listOf(Tensor(outputs, intArrayOf(1, outputs.size)))
        }

        override fun close() {}
    }
    return { _: ModelSource ->
        if (script.getString("load") == "fail") throw IllegalStateException("scripted load failure")
        if (script.getString("load") == "crash") throw NoClassDefFoundError("scripted native-library failure")
        counters.loaded[key] = true
        engine
    }
}

private fun scriptedClient(script: Any?, outputs: FloatArray, counters: Counters, key: String): CloudClient? {
    if (script !is JSONArray) return null
    val outcomes = (0 until script.length()).map { script.getString(it) }.toMutableList()
    return object : CloudClient {
        override fun infer(inputs: List<Tensor>, timeoutMs: Long, cancellation: Cancellation): List<Tensor> {
            counters.calls[key] = (counters.calls[key] ?: 0) + 1
            if (key == "tail") counters.tailSent = inputs[0].values
            if (key == "cloud" && counters.cloudShapes == null) counters.cloudShapes = inputs.map { it.shape.toList() }
            when (val outcome = outcomes.removeAt(0)) {
                "ok" -> return listOf(Tensor(outputs, intArrayOf(1, outputs.size)))
                "crash" -> throw IllegalStateException("scripted client bug")
                "cancelled" -> throw CancellationException("scripted cancellation")
                else -> throw CloudFailure(CloudError.values().first { it.code == outcome })
            }
        }

        override fun close() {}
    }
}

private fun vectors(cases: JSONArray) {
    for (c in 0 until cases.length()) {
        val case = cases.getJSONObject(c)
        val fields = LinkedHashMap<String, Any?>()
        fields["name"] = case.getString("name")
        val manifest = try {
            Manifest.fromJson(case.getJSONObject("manifest"))
        } catch (e: ManifestException) {
            fields["manifest_error"] = e.field
            println(JSONObject(fields as Map<*, *>).toString())
            continue
        }
        val counters = Counters()
        val cloud = scriptedClient(case.opt("cloud"), floats(case.getJSONArray("cloud_outputs")), counters, "cloud")
        val head = case.optJSONObject("head")
        val split = if (head == null) null else SplitParts(
            BytesSource("scripted head model".toByteArray(Charsets.UTF_8)),
            scriptedEngine(head, floats(case.getJSONArray("head_outputs")), counters, "head"),
            scriptedClient(case.opt("tail"), floats(case.getJSONArray("tail_outputs")), counters, "tail")
        )
        val open = scriptedEngine(case.getJSONObject("edge"), floats(case.getJSONArray("edge_outputs")), counters, "edge")
        val predictor = FallbackPredictor(manifest, BytesSource("scripted edge model".toByteArray(Charsets.UTF_8)), open, cloud, split)
        val given = case.getJSONArray("given")
        val inputs = (0 until given.length()).map { i ->
            val g = given.getJSONObject(i)
            val shape = g.getJSONArray("shape")
            Tensor(floats(g.getJSONArray("values")), IntArray(shape.length()) { shape.getInt(it) })
        }
        try {
            val r = predictor.predict(inputs)
            fields["source"] = r.source.code
            fields["error"] = false
            fields["fallback_reason"] = r.fallbackReason?.code
            fields["low_confidence"] = r.lowConfidence
            fields["cloud_error"] = r.cloudError?.code
            fields["label"] = r.label
            fields["confidence"] = r.confidence
        } catch (e: PredictionError) {
            errorFields(fields, "no_result")
        } catch (e: CancellationException) {
            errorFields(fields, "cancelled")
        } catch (e: InvalidInputException) {
            errorFields(fields, "invalid_input")
        }
        fields["cloud_calls"] = counters.calls["cloud"] ?: 0
        fields["edge_runs"] = counters.runs["edge"] ?: 0
        fields["engine_loaded"] = counters.loaded["edge"] ?: false
        fields["head_runs"] = counters.runs["head"] ?: 0
        fields["head_loaded"] = counters.loaded["head"] ?: false
        fields["tail_calls"] = counters.calls["tail"] ?: 0
        fields["tail_sent"] = counters.tailSent?.map { it.toInt() }
        fields["cloud_shapes"] = counters.cloudShapes
        println(JSONObject(fields.mapValues { toJson(it.value) } as Map<*, *>).toString())
    }
}

private fun errorFields(fields: MutableMap<String, Any?>, kind: String) {
    fields["source"] = null
    fields["error"] = true
    fields["error_kind"] = kind
}

private fun quantize(cases: JSONArray) {
    for (c in 0 until cases.length()) {
        val case = cases.getJSONObject(c)
        val levels = Quantize.levels(floats(case.getJSONArray("values")), case.getDouble("scale"), case.getLong("zero_point"), case.getString("dtype"))
        println(JSONObject(mapOf("name" to case.getString("name"), "levels" to JSONArray(levels.toList())) as Map<*, *>).toString())
    }
}

/** LiteRT's native runtime is absent on the JVM, so the real engine fails to compile the model on every accelerator. */
private fun jvmEngine(manifest: Manifest): (ModelSource) -> EdgeEngine =
    { _ -> LiteRtEngine(AssetSource(AssetManager(), manifest.model.file), manifest.inputs, manifest.outputs) }

private fun cloud(endpoint: String, manifestText: String, modelBytes: ByteArray, inputText: String, ca: ByteArray?, token: String?) {
    val manifest = Manifest.parse(manifestText)
    val input = inputText.trim().split(",").map { it.toFloat() }.toFloatArray()
    val security = if (ca == null) CloudSecurity() else CloudSecurity(true, ca)
    val fields = LinkedHashMap<String, Any?>()
    for ((label, secret) in listOf("token" to token, "wrong_token" to token?.let { "wrong-$it" })) {
        if (label == "wrong_token" && token == null) continue
        val client = OipCloudClient(endpoint, manifest.cloud, secret, security)
        val predictor = FallbackPredictor(manifest, BytesSource(modelBytes), jvmEngine(manifest), client)
        try {
            val r = predictor.predict(listOf(Tensor.of(manifest.inputs[0], input)))
            fields["${label}_source"] = r.source.code
            fields["${label}_fallback_reason"] = r.fallbackReason?.code
            fields["${label}_label"] = r.label
            fields["${label}_outputs"] = r.outputs[0].values.toList()
        } catch (e: PredictionError) {
            fields["${label}_error"] = e.message
        }
        fields["edge_problem"] = predictor.edgeProblem?.code
        fields["client"] = client.toString()
        predictor.close()
    }
    println(JSONObject(fields.mapValues { toJson(it.value) } as Map<*, *>).toString())
}

/**
 * Split mode as the generated SDK class wires it (tail = [OipCloudClient] on the manifest's tail spec, no cloud), over
 * the real server; the head engine replays the head's outputs computed off the JVM (one line per sample), since
 * LiteRT has no native runtime here. The policy quantizes them, the client sends them as INT8.
 */
private fun split(endpoint: String, manifestText: String, modelBytes: ByteArray, headBytes: ByteArray, middleText: String) {
    val manifest = Manifest.parse(manifestText)
    val spec = manifest.split ?: throw IllegalArgumentException("the manifest has no split section")
    for (line in middleText.trim().lines()) {
        val middle = line.split(",").map { it.toFloat() }.toFloatArray()
        val replay = { _: ModelSource ->
            object : EdgeEngine {
                override fun run(inputs: List<Tensor>): List<Tensor> = listOf(Tensor.of(spec.headOutputSpecs[0], middle))
                override fun close() {}
            }
        }
        val sent = ArrayList<FloatArray>()
        val client = OipCloudClient(endpoint, spec.tail)
        val tail = object : CloudClient {
            override fun infer(inputs: List<Tensor>, timeoutMs: Long, cancellation: Cancellation): List<Tensor> {
                sent.add(inputs[0].values)
                return client.infer(inputs, timeoutMs, cancellation)
            }

            override fun close() = client.close()
        }
        val predictor = FallbackPredictor(manifest, BytesSource(modelBytes), jvmEngine(manifest), null, SplitParts(BytesSource(headBytes), replay, tail))
        val fields = LinkedHashMap<String, Any?>()
        try {
            val r = predictor.predict(manifest.inputs.map { Tensor.of(it, FloatArray(it.shape.drop(1).fold(1) { a, d -> a * (d ?: 1) })) })
            fields["source"] = r.source.code
            fields["label"] = r.label
            fields["outputs"] = r.outputs[0].values.toList()
        } catch (e: PredictionError) {
            fields["error"] = e.message
        }
        fields["head_problem"] = predictor.headProblem?.code
        fields["sent"] = sent.map { values -> values.map { it.toInt() } }
        predictor.close()
        println(JSONObject(fields.mapValues { toJson(it.value) } as Map<*, *>).toString())
    }
}

/**
 * Cancelling the coroutine of `predictSuspending` while the real OipCloudClient waits on a server that never
 * answers (a socket that accepts and stays silent): the caller resumes with a CancellationException, the gRPC
 * call is cancelled (the client sees CancellationException, not a CloudFailure) and nothing is retried.
 */
private fun cancel(manifestText: String) {
    val manifest = Manifest.parse(manifestText)
    val silent = ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress())
    val accepted = ArrayList<java.net.Socket>()
    val acceptor = Thread { while (!silent.isClosed) try { synchronized(accepted) { accepted.add(silent.accept()) } } catch (e: Exception) {} }
    acceptor.isDaemon = true
    acceptor.start()
    val real = OipCloudClient("127.0.0.1:${silent.localPort}", manifest.cloud)
    val entered = CountDownLatch(1)
    val finished = CountDownLatch(1)
    var attempts = 0
    var clientSaw = "nothing"
    val counting = object : CloudClient {
        override fun infer(inputs: List<Tensor>, timeoutMs: Long, cancellation: Cancellation): List<Tensor> {
            attempts++
            entered.countDown()
            try {
                return real.infer(inputs, 600000, cancellation)
            } catch (e: Exception) {
                clientSaw = e.javaClass.simpleName
                throw e
            } finally {
                finished.countDown()
            }
        }

        override fun close() = real.close()
    }
    val predictor = FallbackPredictor(manifest, BytesSource(ByteArray(0)), jvmEngine(manifest), counting)
    var caller = "returned"
    runBlocking {
        val job = launch(Dispatchers.Default) {
            try {
                predictor.predictSuspending(listOf(Tensor.of(manifest.inputs[0], FloatArray(64))))
            } catch (e: CancellationException) {
                caller = "cancelled"
            }
        }
        entered.await(60, TimeUnit.SECONDS)
        Thread.sleep(200)  // let the call reach the silent server; the outcome does not depend on how long
        job.cancel()
        job.join()
    }
    val ended = finished.await(60, TimeUnit.SECONDS)
    predictor.close()
    silent.close()
    println(JSONObject(mapOf("caller" to caller, "attempts" to attempts, "client_saw" to clientSaw, "client_ended" to ended) as Map<*, *>).toString())
}

private fun floats(values: JSONArray): FloatArray = FloatArray(values.length()) { values.getDouble(it).toFloat() }

private fun toJson(value: Any?): Any? = when (value) {
    null -> JSONObject.NULL
    is List<*> -> JSONArray(value.map { toJson(it) })
    else -> value
}
