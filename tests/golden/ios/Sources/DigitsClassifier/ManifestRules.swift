import Foundation

/// The manifest checks of `model-manifest.schema.json` (schema_version 1), generated from the schema by
/// EdgeForge so that this SDK, the Python SDK (which validates against the schema itself) and the Kotlin SDK agree.
enum ManifestRules {
    static let schemaVersion = 1

    static let enums: [String: [String]] = [
        "task": ["classification", "embedding", "regression", "raw"],
        "policy/mode": ["edge", "split", "cloud"],
        "model/format": ["tflite", "onnx"],
        "model/precision": ["fp32", "fp16", "int8-dynamic", "int8-full"],
        "preprocessing/layout": ["NCHW", "NHWC", "NC", "ANY"],
        "postprocessing/activation": ["softmax", "none"],
        "tensor/dtype": ["float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool"],
        "oip_tensor/datatype": ["BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"],
    ]

    /// (minimum, maximum, exclusive minimum); nil: unbounded.
    static let ranges: [String: (Double?, Double?, Bool)] = [
        "policy/confidence_threshold": (0.0, 1.0, false),
        "policy/timeout_ms": (1.0, 600000.0, false),
        "policy/retries": (0.0, 10.0, false),
        "preprocessing/pixel_scale": (0.0, nil, true),
        "preprocessing/channels": (1.0, nil, false),
        "tensor/shape": (1.0, nil, false),
        "quantization/scale": (0.0, nil, true),
    ]

    static let patterns: [String: String] = [
        "name": "^[A-Z][A-Za-z0-9]*$",
        "sha256": "^[0-9a-f]{64}$",
        "file": "^[A-Za-z0-9._\\-]+(/[A-Za-z0-9._\\-]+)*$",
        "cloud/endpoint": "^[A-Za-z0-9._\\-\\[\\]:]+:[0-9]{1,5}$",
        "cloud/model_name": "^[A-Za-z0-9_.\\-]+$",
        "cloud/model_version": "^[A-Za-z0-9_.\\-]*$",
        "split/tail/model_name": "^[A-Za-z0-9_.\\-]+$",
    ]

    static func oneOf(_ path: String, _ rule: String, _ value: String) throws {
        let allowed = enums[rule] ?? []
        guard allowed.contains(value) else {
            throw ManifestError(description: "\(path) is '\(value)'; allowed: \(allowed.joined(separator: ", "))", field: path)
        }
    }

    static func inRange(_ path: String, _ rule: String, _ value: Double) throws {
        guard let (low, high, exclusive) = ranges[rule] else { return }
        let tooLow = low.map { exclusive ? value <= $0 : value < $0 } ?? false
        let tooHigh = high.map { value > $0 } ?? false
        if tooLow || tooHigh {
            let bounds = "\(exclusive ? "more than " : "")\(low.map { "\($0)" } ?? "-inf")..\(high.map { "\($0)" } ?? "inf")"
            throw ManifestError(description: "\(path) \(value) is outside \(bounds)", field: path)
        }
    }

    static func matches(_ path: String, _ rule: String, _ value: String) throws {
        guard let pattern = patterns[rule], value.range(of: pattern, options: .regularExpression) != nil else {
            throw ManifestError(description: "\(path) '\(value)' does not match the schema's pattern", field: path)
        }
    }
}
