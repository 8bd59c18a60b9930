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

/// The manifest's fallback policy over an `EdgeEngine` and an optional `CloudClient` (the decision table shared by
/// every EdgeForge SDK): a model whose sha256 does not match is never loaded; load or run failures, confidence below
/// the threshold, or mode `cloud` ask the cloud; when the cloud fails after its retries, the edge result is returned
/// marked low-confidence if there is one, else `PredictionError` is thrown.
public final class FallbackPredictor {
    let manifest: Manifest
    let cloud: CloudClient?
    public private(set) var engine: EdgeEngine?
    public private(set) var edgeProblem: String?

    public init(manifest: Manifest, modelBytes: Data, openEngine: (Data) throws -> EdgeEngine, cloud: CloudClient?) {
        self.manifest = manifest
        self.cloud = cloud
        let digest = SHA256.hash(data: modelBytes).map { String(format: "%02x", $0) }.joined()
        if digest != manifest.model.sha256 {
            edgeProblem = "model_integrity_failed"
        } else {
            do {
                engine = try openEngine(modelBytes)
            } catch {
                edgeProblem = "model_load_failed"
            }
        }
    }

    public func predict(_ inputs: [[Float]]) async throws -> Prediction {
        let start = Date()
        let cloudMode = manifest.policy.mode == "cloud"
        var edge: [[Float]]? = nil
        var reason: String? = "mode_cloud"
        if !cloudMode {
            (edge, reason) = runEdge(inputs)
            if let outputs = edge, !isLow(outputs) {
                return result(outputs, source: "edge", start: start, reason: nil, low: false, cloudError: nil)
            }
        }
        let why = reason ?? "low_confidence"
        let (answer, cloudError) = await askCloud(inputs)
        if let outputs = answer {
            return result(outputs, source: "cloud", start: start, reason: why, low: false, cloudError: nil)
        }
        var problem: String? = why
        if edge == nil && cloudMode {
            (edge, problem) = runEdge(inputs)
        }
        if let outputs = edge {
            return result(outputs, source: "edge", start: start, reason: why, low: true, cloudError: cloudError)
        }
        throw PredictionError(description: "no result: on the device \(problem ?? "-"), and the cloud \(cloudError ?? "-")")
    }

    private func runEdge(_ inputs: [[Float]]) -> ([[Float]]?, String?) {
        guard let engine = engine else { return (nil, edgeProblem) }
        do {
            return (try engine.run(inputs), nil)
        } catch {
            return (nil, "edge_run_failed")
        }
    }

    private func askCloud(_ inputs: [[Float]]) async -> ([[Float]]?, String?) {
        guard let cloud = cloud else { return (nil, "not_configured") }
        var failure = "error"
        for _ in 0...manifest.policy.retries {
            do {
                return (try await cloud.infer(inputs, timeoutMs: manifest.policy.timeoutMs), nil)
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
