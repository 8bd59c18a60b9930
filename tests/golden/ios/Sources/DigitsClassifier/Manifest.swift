import Foundation

/// The manifest is missing a field, holds a wrong value, or has another schema version.
public struct ManifestError: Error, CustomStringConvertible {
    public let description: String
}

public struct TensorSpec: Codable {
    public struct Quantization: Codable {
        public let scale: Double
        public let zeroPoint: Int

        enum CodingKeys: String, CodingKey {
            case scale
            case zeroPoint = "zero_point"
        }
    }

    public let name: String
    public let shape: [Int?]
    public let dtype: String
    public let quantization: Quantization?

    /// Elements in one sample (batch axis dropped, dynamic dimensions read as 1).
    public var sampleSize: Int { shape.dropFirst().reduce(1) { $0 * ($1 ?? 1) } }
}

public struct OipTensor: Codable {
    public let name: String
    public let datatype: String
    public let shape: [Int?]
}

public struct Manifest: Codable {
    public struct Model: Codable {
        public let file: String
        public let sha256: String
        public let format: String
        public let precision: String
    }

    public struct Policy: Codable {
        public let mode: String
        public let confidenceThreshold: Double?
        public let timeoutMs: Int
        public let retries: Int

        enum CodingKeys: String, CodingKey {
            case mode
            case confidenceThreshold = "confidence_threshold"
            case timeoutMs = "timeout_ms"
            case retries
        }
    }

    public struct Cloud: Codable {
        public let endpoint: String?
        public let modelName: String
        public let modelVersion: String
        public let inputs: [OipTensor]
        public let outputs: [OipTensor]

        enum CodingKeys: String, CodingKey {
            case endpoint
            case modelName = "model_name"
            case modelVersion = "model_version"
            case inputs
            case outputs
        }
    }

    /// The device half of split mode: the head model, which model inputs it takes, and what goes over the wire.
    public struct Split: Codable {
        public struct Head: Codable {
            public let file: String
            public let sha256: String
            public let format: String
            public let inputs: [TensorSpec]
            public let outputs: [TensorSpec]
        }

        public let cut: String
        public let head: Head
        public let headInputs: [Int]
        public let sideInputs: [Int]
        public let intermediate: TensorSpec
        public let tail: Cloud

        enum CodingKeys: String, CodingKey {
            case cut, head, intermediate, tail
            case headInputs = "head_inputs"
            case sideInputs = "side_inputs"
        }
    }

    public struct Preprocessing: Codable {
        public let layout: String
        public let pixelScale: Double
        public let pixelOffset: Double
        public let channels: Int?

        enum CodingKeys: String, CodingKey {
            case layout
            case pixelScale = "pixel_scale"
            case pixelOffset = "pixel_offset"
            case channels
        }
    }

    public struct Postprocessing: Codable {
        public let activation: String
    }

    public static let schemaVersion = 1

    public let schemaVersion: Int
    public let name: String
    public let task: String
    public let model: Model
    public let inputs: [TensorSpec]
    public let outputs: [TensorSpec]
    public let labels: [String]?
    public let preprocessing: Preprocessing
    public let postprocessing: Postprocessing
    public let policy: Policy
    public let cloud: Cloud
    public let split: Split?

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version"
        case name, task, model, inputs, outputs, labels, preprocessing, postprocessing, policy, cloud, split
    }

    /// Decode and check the manifest; the error names the failing field.
    public static func load(from data: Data) throws -> Manifest {
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            let path = (context.codingPath + [key]).map { $0.stringValue }.joined(separator: "/")
            throw ManifestError(description: "model-manifest.json: \(path) is required")
        } catch {
            throw ManifestError(description: "model-manifest.json is invalid: \(error)")
        }
        try manifest.validate()
        return manifest
    }

    func validate() throws {
        guard schemaVersion == Manifest.schemaVersion else {
            throw ManifestError(description: "schema_version is \(schemaVersion); this SDK reads \(Manifest.schemaVersion)")
        }
        guard ["classification", "embedding", "regression", "raw"].contains(task) else {
            throw ManifestError(description: "task '\(task)' is not one of classification, embedding, regression, raw")
        }
        guard ["edge", "split", "cloud"].contains(policy.mode) else {
            throw ManifestError(description: "policy/mode '\(policy.mode)' is not one of edge, split, cloud")
        }
        guard Manifest.isSha256(model.sha256) else {
            throw ManifestError(description: "model/sha256 is not 64 lowercase hex digits")
        }
        if policy.mode == "split" && split == nil {
            throw ManifestError(description: "split: mode split needs a split section")
        }
        if let split = split {
            guard Manifest.isSha256(split.head.sha256) else {
                throw ManifestError(description: "split/head/sha256 is not 64 lowercase hex digits")
            }
            guard split.intermediate.dtype == "int8", split.intermediate.quantization != nil else {
                throw ManifestError(description: "split/intermediate must be int8 with a quantization")
            }
        }
        if task == "classification" {
            guard let labels = labels, policy.confidenceThreshold != nil else {
                throw ManifestError(description: "a classifier needs labels and policy/confidence_threshold")
            }
            if let width = outputs.first?.shape.last ?? nil, width != labels.count {
                throw ManifestError(description: "labels: \(labels.count) labels for \(width) classes")
            }
        }
    }

    private static func isSha256(_ text: String) -> Bool {
        text.count == 64 && text.allSatisfy({ $0.isHexDigit && !$0.isUppercase })
    }
}
