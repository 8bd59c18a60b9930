import CryptoKit
import Foundation

/// Runs one sample on the device: one tensor per model input and output, batch axis of 1 included.
public protocol EdgeEngine: AnyObject {
    func run(_ inputs: [Tensor]) throws -> [Tensor]
}

/// Runs one sample remotely; throws `CloudFailure` when no answer comes back, `CancellationError` when cancelled.
public protocol CloudClient: AnyObject {
    func infer(_ inputs: [Tensor], timeoutMs: Int) async throws -> [Tensor]
    func close() async
}

public enum Source: String, Sendable { case edge, split, cloud }

/// Why the cloud did not answer.
public enum CloudError: String, Sendable { case unavailable, timeout, error, notConfigured = "not_configured" }

/// Why a model (the whole model or the split head) cannot run here.
public enum EdgeProblem: String, Sendable {
    case modelIntegrityFailed = "model_integrity_failed", modelLoadFailed = "model_load_failed"
    case edgeRunFailed = "edge_run_failed", notConfigured = "not_configured"
}

/// Why a prediction did not come from its first choice; `code` is the name every EdgeForge SDK uses.
public enum FallbackReason: Sendable, Equatable {
    case lowConfidence, modeCloud
    case edgeFailed(EdgeProblem)
    case splitHeadFailed(EdgeProblem)
    case splitTailFailed(CloudError)

    public var code: String {
        switch self {
        case .lowConfidence: return "low_confidence"
        case .modeCloud: return "mode_cloud"
        case .edgeFailed(let problem): return problem.rawValue
        case .splitHeadFailed(let problem): return "split_\(problem.rawValue)"
        case .splitTailFailed(let error): return "split_\(error.rawValue)"
        }
    }
}

/// A cloud call that did not answer.
public struct CloudFailure: Error {
    public let kind: CloudError
    public let detail: String
}

/// Neither the device nor the cloud produced a result.
public struct PredictionError: Error, CustomStringConvertible {
    public let description: String
}

/// One prediction: where it ran, how long it took, and why it fell back.
public struct Prediction: Sendable {
    public let outputs: [Tensor]
    public let source: Source
    public let latencyMs: Double
    public let label: String?
    public let confidence: Double?
    public let fallbackReason: FallbackReason?
    public let lowConfidence: Bool
    public let cloudError: CloudError?
}

/// The device half of split mode: the head model's file, how to open it, and the client of the tail model.
public struct SplitParts {
    public let headURL: URL
    public let openHead: (URL) throws -> EdgeEngine
    public let tail: CloudClient?
}

/// The manifest's fallback policy (the decision table of every EdgeForge SDK, tests/vectors/fallback.json):
/// inputs are checked before anything runs; a model whose sha256 does not match is never opened; load or run
/// failures, confidence below the threshold, or mode `cloud` ask the cloud; mode `split` runs the head here,
/// quantizes its output to int8 and asks the tail model, then the cloud; when the cloud fails after its retries the
/// edge result is returned marked low-confidence if there is one, else `PredictionError`. Cancellation of the
/// calling task stops the prediction with `CancellationError`: it is neither retried nor answered elsewhere.
/// Not thread-safe by itself: the SDK's actor calls it one prediction at a time.
final class FallbackPredictor {
    let manifest: Manifest
    let cloud: CloudClient?
    let engine: EdgeEngine?
    let edgeProblem: EdgeProblem?
    let head: EdgeEngine?
    let headProblem: EdgeProblem?
    let splitSpec: Manifest.Split?
    let tail: CloudClient?

    init(manifest: Manifest, modelURL: URL, openEngine: (URL) throws -> EdgeEngine, cloud: CloudClient?, split: SplitParts?) {
        self.manifest = manifest
        self.cloud = cloud
        (engine, edgeProblem) = openChecked(modelURL, sha256: manifest.model.sha256, open: openEngine)
        splitSpec = manifest.policy.mode == "split" ? manifest.split : nil
        if let spec = splitSpec, let parts = split {
            (head, headProblem) = openChecked(parts.headURL, sha256: spec.head.sha256, open: parts.openHead)
            tail = parts.tail
        } else {
            (head, headProblem) = (nil, .notConfigured)
            tail = nil
        }
    }

    func predict(_ given: [Tensor]) async throws -> Prediction {
        let inputs = try checkInputs(manifest.inputs, given)
        let start = DispatchTime.now().uptimeNanoseconds
        let mode = manifest.policy.mode
        var edge: [Tensor]? = nil
        let reason: FallbackReason
        if mode == "split" {
            let (outputs, problem) = try await runSplit(inputs)
            if let outputs = outputs {
                return result(outputs, .split, start, nil, false, nil)
            }
            reason = problem ?? .splitTailFailed(.error)
        } else if mode == "cloud" {
            reason = .modeCloud
        } else {
            let (outputs, problem) = runEdge(inputs)
            edge = outputs
            if let outputs = outputs, !isLow(outputs) {
                return result(outputs, .edge, start, nil, false, nil)
            }
            reason = problem.map { .edgeFailed($0) } ?? .lowConfidence
        }
        let (answer, cloudError) = try await call(cloud, inputs)
        if let outputs = answer {
            return result(outputs, .cloud, start, reason, false, nil)
        }
        var problem = reason.code
        if edge == nil && mode != "edge" {
            let attempt = runEdge(inputs)
            edge = attempt.0
            problem = attempt.1?.rawValue ?? problem
        }
        if let outputs = edge {
            return result(outputs, .edge, start, reason, true, cloudError)
        }
        throw PredictionError(description: "no result: on the device \(problem), and the cloud \(cloudError?.rawValue ?? "error")")
    }

    /// Head here, int8 over the wire, tail there: (outputs, nil) or (nil, the split failure).
    private func runSplit(_ inputs: [Tensor]) async throws -> ([Tensor]?, FallbackReason?) {
        guard let spec = splitSpec else { return (nil, .splitHeadFailed(.notConfigured)) }
        guard let head = head else { return (nil, .splitHeadFailed(headProblem ?? .notConfigured)) }
        guard let middle = try? head.run(spec.headInputs.map { inputs[$0] }).first,
              let q = spec.intermediate.quantization else {
            return (nil, .splitHeadFailed(.edgeRunFailed))
        }
        let levels = Quantize.levels(middle.values, scale: q.scale, zeroPoint: q.zeroPoint, dtype: "int8")
        let sent = Tensor(values: levels.map { Float($0) }, shape: middle.shape)
        let (outputs, failure) = try await call(tail, [sent] + spec.sideInputs.map { inputs[$0] })
        return outputs != nil ? (outputs, nil) : (nil, .splitTailFailed(failure ?? .error))
    }

    private func runEdge(_ inputs: [Tensor]) -> ([Tensor]?, EdgeProblem?) {
        guard let engine = engine else { return (nil, edgeProblem) }
        guard let outputs = try? engine.run(inputs) else { return (nil, .edgeRunFailed) }
        return (outputs, nil)
    }

    private func call(_ client: CloudClient?, _ inputs: [Tensor]) async throws -> ([Tensor]?, CloudError?) {
        guard let client = client else { return (nil, .notConfigured) }
        var failure = CloudError.error
        for _ in 0...max(0, manifest.policy.retries) {
            try Task.checkCancellation()
            do {
                return (try await client.infer(inputs, timeoutMs: manifest.policy.timeoutMs), nil)
            } catch let error as CancellationError {
                throw error
            } catch let error as CloudFailure {
                failure = error.kind
            } catch {
                failure = .error  // a client bug is the cloud not answering, not the app's crash
            }
        }
        return (nil, failure)
    }

    private func isLow(_ outputs: [Tensor]) -> Bool {
        guard manifest.task == "classification", let threshold = manifest.policy.confidenceThreshold else { return false }
        return topClass(outputs).1 < threshold
    }

    private func result(_ outputs: [Tensor], _ source: Source, _ start: UInt64, _ reason: FallbackReason?, _ low: Bool,
                        _ cloudError: CloudError?) -> Prediction {
        let top = manifest.task == "classification" ? topClass(outputs) : nil
        let latencyMs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        return Prediction(outputs: outputs, source: source, latencyMs: latencyMs, label: top?.0, confidence: top?.1,
                          fallbackReason: reason, lowConfidence: low, cloudError: cloudError)
    }

    /// (label, probability) of the most likely class in output 0, after the manifest's activation.
    func topClass(_ outputs: [Tensor]) -> (String, Double) {
        var probs = outputs[0].values.map { Double($0) }
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

/// (engine, nil), or (nil, why not): a mismatching model is never opened. The file is hashed in 64 KiB chunks.
func openChecked(_ url: URL, sha256: String, open: (URL) throws -> EdgeEngine) -> (EdgeEngine?, EdgeProblem?) {
    guard let digest = try? fileSHA256(url) else { return (nil, .modelLoadFailed) }
    guard digest == sha256 else { return (nil, .modelIntegrityFailed) }
    guard let engine = try? open(url) else { return (nil, .modelLoadFailed) }
    return (engine, nil)
}

private func fileSHA256(_ url: URL) throws -> String {
    let handle = try FileHandle(forReadingFrom: url)
    defer { try? handle.close() }
    var hasher = SHA256()
    while let chunk = try handle.read(upToCount: 64 * 1024), !chunk.isEmpty {
        hasher.update(data: chunk)
    }
    return hasher.finalize().map { String(format: "%02x", $0) }.joined()
}
