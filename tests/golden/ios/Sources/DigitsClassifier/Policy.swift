import CryptoKit
import Foundation

/// Runs one sample on the device: float arrays, one per tensor, without a batch axis.
public protocol EdgeEngine {
    func run(_ inputs: [[Float]]) throws -> [[Float]]
}

/// Runs one sample remotely; throws `CloudFailure` when no answer comes back.
public protocol CloudClient {
    func infer(_ inputs: [[Float]], timeoutMs: Int) async throws -> [[Float]]
}

/// A cloud call that did not answer; `kind` is `unavailable`, `timeout` or `error`.
public struct CloudFailure: Error {
    public let kind: String
    public let detail: String
}

/// Neither the device nor the cloud produced a result.
public struct PredictionError: Error, CustomStringConvertible {
    public let description: String
}

/// One prediction: where it ran (`edge`, `split` or `cloud`), how long it took, and why it fell back.
public struct Prediction {
    public let outputs: [[Float]]
    public let source: String
    public let latencyMs: Double
    public let label: String?
    public let confidence: Double?
    public let fallbackReason: String?
    public let lowConfidence: Bool
    public let cloudError: String?
}

/// The device half of split mode: the head model's bytes, how to open them, and the client of the tail model.
public struct SplitParts {
    public let headBytes: Data
    public let openHead: (Data) throws -> EdgeEngine
    public let tail: CloudClient?

    public init(headBytes: Data, openHead: @escaping (Data) throws -> EdgeEngine, tail: CloudClient?) {
        self.headBytes = headBytes
        self.openHead = openHead
        self.tail = tail
    }
}

/// The manifest's fallback policy over an `EdgeEngine` and an optional `CloudClient` (the decision table shared by
/// every EdgeForge SDK): a model whose sha256 does not match is never loaded; load or run failures, confidence below
/// the threshold, or mode `cloud` ask the cloud; mode `split` runs the head here, quantizes its output to int8 with
/// the manifest's scale and zero point and asks the tail model, and when that fails (`split_` + the head's or the
/// tail call's problem) asks the cloud for the whole model; when the cloud fails after its retries, the edge result
/// is returned marked low-confidence if there is one, else `PredictionError` is thrown.
public final class FallbackPredictor {
    let manifest: Manifest
    let cloud: CloudClient?
    public let engine: EdgeEngine?
    /// Why the whole model cannot run here (`model_integrity_failed`, `model_load_failed`), or nil.
    public let edgeProblem: String?
    public let head: EdgeEngine?
    /// Why split mode cannot run its head here (`not_configured`, `model_integrity_failed`, `model_load_failed`), or nil.
    public let headProblem: String?
    let splitSpec: Manifest.Split?
    let tail: CloudClient?

    public init(manifest: Manifest, modelBytes: Data, openEngine: (Data) throws -> EdgeEngine, cloud: CloudClient?,
                split: SplitParts? = nil) {
        self.manifest = manifest
        self.cloud = cloud
        (engine, edgeProblem) = openChecked(modelBytes, sha256: manifest.model.sha256, open: openEngine)
        splitSpec = manifest.policy.mode == "split" ? manifest.split : nil
        if let spec = splitSpec, let parts = split {
            (head, headProblem) = openChecked(parts.headBytes, sha256: spec.head.sha256, open: parts.openHead)
            tail = parts.tail
        } else {
            (head, headProblem) = (nil, "not_configured")
            tail = nil
        }
    }

    public func predict(_ inputs: [[Float]]) async throws -> Prediction {
        let start = Date()
        let mode = manifest.policy.mode
        var edge: [[Float]]? = nil
        let reason: String
        if mode == "split" {
            let (outputs, problem) = await runSplit(inputs)
            if let outputs = outputs {
                return result(outputs, source: "split", start: start, reason: nil, low: false, cloudError: nil)
            }
            reason = problem ?? "split_error"
        } else if mode == "cloud" {
            reason = "mode_cloud"
        } else {
            let (outputs, problem) = runEdge(inputs)
            edge = outputs
            if let outputs = outputs, !isLow(outputs) {
                return result(outputs, source: "edge", start: start, reason: nil, low: false, cloudError: nil)
            }
            reason = problem ?? "low_confidence"
        }
        let (answer, cloudError) = await call(cloud, inputs)
        if let outputs = answer {
            return result(outputs, source: "cloud", start: start, reason: reason, low: false, cloudError: nil)
        }
        var problem: String? = reason
        if edge == nil && mode != "edge" {
            (edge, problem) = runEdge(inputs)
        }
        if let outputs = edge {
            return result(outputs, source: "edge", start: start, reason: reason, low: true, cloudError: cloudError)
        }
        throw PredictionError(description: "no result: on the device \(problem ?? "-"), and the cloud \(cloudError ?? "-")")
    }

    /// Head here, int8 over the wire, tail there: (outputs, nil) or (nil, `split_<problem>`).
    private func runSplit(_ inputs: [[Float]]) async -> ([[Float]]?, String?) {
        guard let spec = splitSpec else { return (nil, "split_not_configured") }
        guard let head = head else { return (nil, "split_\(headProblem ?? "error")") }
        let middle: [Float]
        do {
            middle = try head.run(spec.headInputs.map { inputs[$0] })[0]
        } catch {
            return (nil, "split_edge_run_failed")
        }
        let q = spec.intermediate.quantization!
        let sent = quantizeInt8(middle, scale: q.scale, zeroPoint: q.zeroPoint)
        let (outputs, failure) = await call(tail, [sent] + spec.sideInputs.map { inputs[$0] })
        return outputs != nil ? (outputs, nil) : (nil, "split_\(failure ?? "error")")
    }

    private func runEdge(_ inputs: [[Float]]) -> ([[Float]]?, String?) {
        guard let engine = engine else { return (nil, edgeProblem) }
        do {
            return (try engine.run(inputs), nil)
        } catch {
            return (nil, "edge_run_failed")
        }
    }

    private func call(_ client: CloudClient?, _ inputs: [[Float]]) async -> ([[Float]]?, String?) {
        guard let client = client else { return (nil, "not_configured") }
        var failure = "error"
        for _ in 0...manifest.policy.retries {
            do {
                return (try await client.infer(inputs, timeoutMs: manifest.policy.timeoutMs), nil)
            } catch let error as CloudFailure {
                failure = error.kind
            } catch {
                failure = "error"
            }
        }
        return (nil, failure)
    }

    private func isLow(_ outputs: [[Float]]) -> Bool {
        guard manifest.task == "classification", let threshold = manifest.policy.confidenceThreshold else { return false }
        return topClass(outputs).1 < threshold
    }

    private func result(_ outputs: [[Float]], source: String, start: Date, reason: String?, low: Bool, cloudError: String?) -> Prediction {
        let top = manifest.task == "classification" ? topClass(outputs) : nil
        let latencyMs = Date().timeIntervalSince(start) * 1000
        return Prediction(outputs: outputs, source: source, latencyMs: latencyMs, label: top?.0, confidence: top?.1,
                          fallbackReason: reason, lowConfidence: low, cloudError: cloudError)
    }

    /// (label, probability) of the most likely class in output 0, after the manifest's activation.
    func topClass(_ outputs: [[Float]]) -> (String, Double) {
        var probs = outputs[0].map { Double($0) }
        if manifest.postprocessing.activation == "softmax" {
            let top = probs.max() ?? 0
            let exps = probs.map { exp($0 - top) }
            let sum = exps.reduce(0, +)
            probs = exps.map { $0 / sum }
        }
        let best = probs.indices.max(by: { probs[$0] < probs[$1] }) ?? 0
        return (manifest.labels?[best] ?? String(best), probs[best])
    }
}

/// (engine, nil), or (nil, `model_integrity_failed` / `model_load_failed`): a mismatch is never loaded.
func openChecked(_ bytes: Data, sha256: String, open: (Data) throws -> EdgeEngine) -> (EdgeEngine?, String?) {
    let digest = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    guard digest == sha256 else { return (nil, "model_integrity_failed") }
    do {
        return (try open(bytes), nil)
    } catch {
        return (nil, "model_load_failed")
    }
}

/// `clip(round_half_even(x / scale) + zeroPoint, -128, 127)` with the division in float32 (as the Python SDK and
/// the compressor compute it), as floats holding the int8 values that are sent as INT8.
public func quantizeInt8(_ values: [Float], scale: Double, zeroPoint: Int) -> [Float] {
    let s = Float(scale)
    return values.map { v in
        Float(min(127.0, max(-128.0, Double(v / s).rounded(.toNearestOrEven) + Double(zeroPoint))))
    }
}
