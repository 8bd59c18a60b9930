import Foundation

/// The manifest is missing a field, holds a wrong value, or has another schema version.
public struct ManifestError: Error, CustomStringConvertible {
    public let description: String
    /// The manifest field at fault (a path such as `policy/retries`).
    public var field: String = ""
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

    /// Elements in one sample of the static shape (batch axis dropped, dynamic dimensions read as 1).
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
        /// The build shipped this model although it missed the accuracy gate (an integer-only target's closest
        /// candidate; the build report says what was lost). Absent in older manifests: read as `false`.
        public let belowGate: Bool?

        /// Whether the model is below the build's accuracy gate.
        public var shippedBelowGate: Bool { belowGate ?? false }

        enum CodingKeys: String, CodingKey {
            case file, sha256, format, precision
            case belowGate = "below_gate"
        }
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

    /// The schema's rules ([ManifestRules], generated from model-manifest.schema.json) and the SDK's own checks.
    func validate() throws {
        guard schemaVersion == ManifestRules.schemaVersion else {
            throw ManifestError(description: "schema_version is \(schemaVersion); this SDK reads \(ManifestRules.schemaVersion)", field: "schema_version")
        }
        try ManifestRules.matches("name", "name", name)
        try ManifestRules.oneOf("task", "task", task)
        try ManifestRules.oneOf("policy/mode", "policy/mode", policy.mode)
        if let threshold = policy.confidenceThreshold {
            try ManifestRules.inRange("policy/confidence_threshold", "policy/confidence_threshold", threshold)
        }
        try ManifestRules.inRange("policy/timeout_ms", "policy/timeout_ms", Double(policy.timeoutMs))
        try ManifestRules.inRange("policy/retries", "policy/retries", Double(policy.retries))
        try ManifestRules.matches("model/sha256", "sha256", model.sha256)
        try ManifestRules.matches("model/file", "file", model.file)
        try ManifestRules.oneOf("model/format", "model/format", model.format)
        try ManifestRules.oneOf("model/precision", "model/precision", model.precision)
        try ManifestRules.oneOf("preprocessing/layout", "preprocessing/layout", preprocessing.layout)
        try ManifestRules.inRange("preprocessing/pixel_scale", "preprocessing/pixel_scale", preprocessing.pixelScale)
        try ManifestRules.oneOf("postprocessing/activation", "postprocessing/activation", postprocessing.activation)
        for (key, tensors) in [("inputs", inputs), ("outputs", outputs)] {
            for (i, tensor) in tensors.enumerated() {
                try Manifest.check(tensor, at: "\(key)/\(i)")
            }
        }
        try ManifestRules.matches("cloud/model_name", "cloud/model_name", cloud.modelName)
        if let endpoint = cloud.endpoint {
            try ManifestRules.matches("cloud/endpoint", "cloud/endpoint", endpoint)
        }
        if policy.mode == "split" && split == nil {
            throw ManifestError(description: "split: mode split needs a split section", field: "split")
        }
        if let split = split {
            try ManifestRules.matches("split/head/sha256", "sha256", split.head.sha256)
            guard split.intermediate.dtype == "int8", split.intermediate.quantization != nil else {
                throw ManifestError(description: "split/intermediate must be int8 with a quantization", field: "split/intermediate")
            }
        }
        if task == "classification" {
            guard let labels = labels, policy.confidenceThreshold != nil else {
                throw ManifestError(description: "a classifier needs labels and policy/confidence_threshold", field: "labels")
            }
            if let width = outputs.first?.shape.last ?? nil, width != labels.count {
                throw ManifestError(description: "labels: \(labels.count) labels for \(width) classes", field: "labels")
            }
        }
    }

    private static func check(_ tensor: TensorSpec, at path: String) throws {
        try ManifestRules.oneOf("\(path)/dtype", "tensor/dtype", tensor.dtype)
        for (i, d) in tensor.shape.enumerated() {
            if let d = d {
                try ManifestRules.inRange("\(path)/shape/\(i)", "tensor/shape", Double(d))
            }
        }
        if let q = tensor.quantization {
            try ManifestRules.inRange("\(path)/quantization/scale", "quantization/scale", q.scale)
        }
    }
}
