import Foundation
import GRPC
import NIOCore
import NIOPosix
import SwiftProtobuf

/// Open Inference Protocol v2 `ModelInfer` over grpc-swift with raw little-endian FP32 contents.
public final class OipCloudClient: CloudClient {
    private let cloud: Manifest.Cloud
    private let group: MultiThreadedEventLoopGroup
    private let channel: GRPCChannel
    private let client: Inference_GRPCInferenceServiceAsyncClient

    public init(endpoint: String, cloud: Manifest.Cloud, token: String? = nil, useTLS: Bool = false) throws {
        let parts = endpoint.split(separator: ":")
        guard parts.count >= 2, let port = Int(parts[parts.count - 1]) else {
            throw CloudFailure(kind: "error", detail: "endpoint \(endpoint) is not HOST:PORT")
        }
        let host = parts.dropLast().joined(separator: ":")
        self.cloud = cloud
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        channel = try GRPCChannelPool.with(
            target: .host(host, port: port),
            transportSecurity: useTLS ? .tls(.makeClientConfigurationBackedByNIOSSL()) : .plaintext,
            eventLoopGroup: group
        )
        var options = CallOptions()
        if let token = token {
            options.customMetadata.add(name: "authorization", value: "Bearer \(token)")
        }
        client = Inference_GRPCInferenceServiceAsyncClient(channel: channel, defaultCallOptions: options)
    }

    public func infer(_ inputs: [[Float]], timeoutMs: Int) async throws -> [[Float]] {
        var request = Inference_ModelInferRequest()
        request.modelName = cloud.modelName
        request.modelVersion = cloud.modelVersion
        for (spec, values) in zip(cloud.inputs, inputs) {
            var tensor = Inference_ModelInferRequest.InferInputTensor()
            tensor.name = spec.name
            tensor.datatype = "FP32"
            tensor.shape = [1] + spec.shape.dropFirst().map { Int64($0 ?? 1) }
            request.inputs.append(tensor)
            request.rawInputContents.append(values.withUnsafeBufferPointer { Data(buffer: $0) })
        }
        var options = CallOptions()
        options.timeLimit = .timeout(.milliseconds(Int64(timeoutMs)))
        let response: Inference_ModelInferResponse
        do {
            response = try await client.modelInfer(request, callOptions: options)
        } catch let status as GRPCStatus {
            switch status.code {
            case .deadlineExceeded: throw CloudFailure(kind: "timeout", detail: status.description)
            case .unavailable: throw CloudFailure(kind: "unavailable", detail: status.description)
            default: throw CloudFailure(kind: "error", detail: status.description)
            }
        }
        var byName: [String: [Float]] = [:]
        for (tensor, raw) in zip(response.outputs, response.rawOutputContents) {
            byName[tensor.name] = raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        return try cloud.outputs.map { spec in
            guard let values = byName[spec.name] else {
                throw CloudFailure(kind: "error", detail: "response lacks output \(spec.name)")
            }
            return values
        }
    }

    deinit {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}
