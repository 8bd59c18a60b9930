import Foundation

/// DigitsClassifier: the bundled `model.tflite` on TensorFlow Lite with the manifest's cloud fallback.
public final class DigitsClassifier {
    public let manifest: Manifest
    private let predictor: FallbackPredictor

    /// Load the bundled model and manifest; `cloudEndpoint` (HOST:PORT) and `token` enable or redirect the fallback.
    public init(cloudEndpoint: String? = nil, token: String? = nil, threads: Int = 1) throws {
        guard let manifestURL = Bundle.module.url(forResource: "model-manifest", withExtension: "json"),
              let modelURL = Bundle.module.url(forResource: "model.tflite", withExtension: nil) else {
            throw ManifestError(description: "the package resources lack model-manifest.json or model.tflite")
        }
        let manifest = try Manifest.load(from: Data(contentsOf: manifestURL))
        self.manifest = manifest
        let endpoint = cloudEndpoint ?? manifest.cloud.endpoint
        let cloud: CloudClient? = try endpoint.map { try OipCloudClient(endpoint: $0, cloud: manifest.cloud, token: token) }
        var split: SplitParts? = nil
        if let spec = manifest.split {
            let headName = URL(fileURLWithPath: spec.head.file).lastPathComponent
            guard let headURL = Bundle.module.url(forResource: headName, withExtension: nil) else {
                throw ManifestError(description: "the package resources lack the split head \(headName)")
            }
            let tail: CloudClient? = try endpoint.map { try OipCloudClient(endpoint: $0, cloud: spec.tail, token: token) }
            split = SplitParts(
                headBytes: try Data(contentsOf: headURL),
                openHead: { _ in try LiteRtEngine(modelPath: headURL.path, inputs: spec.head.inputs, outputs: spec.head.outputs, threads: threads) },
                tail: tail
            )
        }
        predictor = FallbackPredictor(
            manifest: manifest,
            modelBytes: try Data(contentsOf: modelURL),
            openEngine: { _ in try LiteRtEngine(modelPath: modelURL.path, inputs: manifest.inputs, outputs: manifest.outputs, threads: threads) },
            cloud: cloud,
            split: split
        )
    }

    /// Why the on-device model cannot run (`model_integrity_failed`, `model_load_failed`), or nil.
    public var edgeProblem: String? { predictor.edgeProblem }

    public var labels: [String]? { manifest.labels }

    /// Predict one sample of 64 floats (shape [1, 8, 8]).
    public func predict(_ input: [Float]) async throws -> Prediction {
        guard input.count == manifest.inputs[0].sampleSize else {
            throw PredictionError(description: "input needs \(manifest.inputs[0].sampleSize) values, got \(input.count)")
        }
        return try await predictor.predict([input])
    }

    /// Predict from interleaved HWC pixel values (0...255), scaled and laid out as the manifest says.
    public func predict(pixels: [UInt8], width: Int, height: Int, channels: Int) async throws -> Prediction {
        let pre = manifest.preprocessing
        var values = [Float](repeating: 0, count: width * height * channels)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<channels {
                    let value = Float(Double(pixels[(y * width + x) * channels + c]) * pre.pixelScale + pre.pixelOffset)
                    let index = pre.layout == "NCHW" ? (c * height + y) * width + x : (y * width + x) * channels + c
                    values[index] = value
                }
            }
        }
        return try await predict(values)
    }
}
