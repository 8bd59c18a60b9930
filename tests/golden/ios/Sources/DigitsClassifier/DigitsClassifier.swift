import Foundation
import LiteRT

/// DigitsClassifier: the bundled `model.tflite` on LiteRT with the manifest's cloud fallback.
///
/// An actor: predictions from any task are run one at a time (LiteRT's models are not thread-safe). Cancelling the
/// calling task cancels the call under way; it is not retried. TLS is on unless the endpoint is loopback.
public actor DigitsClassifier {
    public nonisolated let manifest: Manifest
    private let predictor: FallbackPredictor
    private var closed = false

    /// Load the bundled model and manifest; `cloudEndpoint` (HOST:PORT) and `token` enable or redirect the fallback.
    public init(cloudEndpoint: String? = nil, token: String? = nil, security: CloudSecurity = CloudSecurity()) throws {
        guard let manifestURL = Bundle.module.url(forResource: "model-manifest", withExtension: "json"),
              let modelURL = Bundle.module.url(forResource: "model.tflite", withExtension: nil) else {
            throw ManifestError(description: "the package resources lack model-manifest.json or model.tflite")
        }
        let manifest = try Manifest.load(from: Data(contentsOf: manifestURL))
        self.manifest = manifest
        let environment = try Environment()
        let endpoint = cloudEndpoint ?? manifest.cloud.endpoint
        let cloud: CloudClient? = try endpoint.map { try OipCloudClient(endpoint: $0, cloud: manifest.cloud, token: token, security: security) }
        var split: SplitParts? = nil
        if let spec = manifest.split {
            let headName = URL(fileURLWithPath: spec.head.file).lastPathComponent
            guard let headURL = Bundle.module.url(forResource: headName, withExtension: nil) else {
                throw ManifestError(description: "the package resources lack the split head \(headName)")
            }
            let tail: CloudClient? = try endpoint.map { try OipCloudClient(endpoint: $0, cloud: spec.tail, token: token, security: security) }
            split = SplitParts(headURL: headURL, openHead: { url in
                try LiteRtEngine(modelURL: url, environment: environment, inputs: spec.head.inputs, outputs: spec.head.outputs)
            }, tail: tail)
        }
        predictor = FallbackPredictor(manifest: manifest, modelURL: modelURL, openEngine: { url in
            try LiteRtEngine(modelURL: url, environment: environment, inputs: manifest.inputs, outputs: manifest.outputs)
        }, cloud: cloud, split: split)
    }

    /// Why the on-device model cannot run, or nil.
    public var edgeProblem: EdgeProblem? { predictor.edgeProblem }

    public nonisolated var labels: [String]? { manifest.labels }

    /// Predict one sample: one tensor per model input (serving_default_args_0 [1, 1, 8, 8]).
    public func predict(_ inputs: [Tensor]) async throws -> Prediction {
        guard !closed else { throw PredictionError(description: "DigitsClassifier is closed") }
        return try await predictor.predict(inputs)
    }

    /// Predict 64 floats of input serving_default_args_0 (shape [1, 8, 8]).
    public func predict(_ input: [Float]) async throws -> Prediction {
        try await predict([Tensor.of(manifest.inputs[0], input)])
    }

    /// Predict from interleaved pixels of any size (1, 3 or 4 channels, 0...255): resized, luma for one channel, scaled.
    public func predict(pixels: [UInt8], width: Int, height: Int, channels: Int) async throws -> Prediction {
        try await predict([Images.toInput(pixels, width: width, height: height, channels: channels,
                                          pre: manifest.preprocessing, input: manifest.inputs[0])])
    }

    /// Close the cloud connections (without blocking a thread); later predictions throw.
    public func close() async {
        closed = true
        await predictor.cloud?.close()
        await predictor.tail?.close()
    }
}
