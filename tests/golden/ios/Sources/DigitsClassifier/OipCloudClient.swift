import Foundation
import GRPC
import NIOCore
import NIOPosix
import SwiftProtobuf

/// Open Inference Protocol v2 `ModelInfer` over grpc-swift with raw little-endian contents in each tensor's datatype
/// (FP32 for whole models; INT8 for a split tail's intermediate, whose floats already hold the int8 values).
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
            tensor.datatype = spec.datatype
            tensor.shape = [1] + spec.shape.dropFirst().map { Int64($0 ?? 1) }
            request.inputs.append(tensor)
            request.rawInputContents.append(try encode(spec, values))
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
            byName[tensor.name] = try decode(tensor.name, tensor.datatype, raw)
        }
        return try cloud.outputs.map { spec in
            guard let values = byName[spec.name] else {
                throw CloudFailure(kind: "error", detail: "response lacks output \(spec.name)")
            }
            return values
        }
    }

    private func encode(_ spec: OipTensor, _ values: [Float]) throws -> Data {
        switch spec.datatype {
        case "FP32": return values.withUnsafeBufferPointer { Data(buffer: $0) }
        case "FP64": return values.map { Double($0) }.withUnsafeBufferPointer { Data(buffer: $0) }
        case "INT64": return values.map { Int64($0) }.withUnsafeBufferPointer { Data(buffer: $0) }
        case "INT32": return values.map { Int32($0) }.withUnsafeBufferPointer { Data(buffer: $0) }
        case "INT8": return Data(values.map { UInt8(bitPattern: Int8($0)) })
        case "UINT8", "BOOL": return Data(values.map { UInt8($0) })
        default:
            throw CloudFailure(kind: "error", detail: "input \(spec.name) has datatype \(spec.datatype); supported: FP32, FP64, INT64, INT32, INT8, UINT8, BOOL")
        }
    }

    private func decode(_ name: String, _ datatype: String, _ raw: Data) throws -> [Float] {
        switch datatype {
        case "FP32": return raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        case "FP64": return raw.withUnsafeBytes { $0.bindMemory(to: Double.self).map { Float($0) } }
        case "INT64": return raw.withUnsafeBytes { $0.bindMemory(to: Int64.self).map { Float($0) } }
        case "INT32": return raw.withUnsafeBytes { $0.bindMemory(to: Int32.self).map { Float($0) } }
        case "INT8": return raw.map { Float(Int8(bitPattern: $0)) }
        case "UINT8", "BOOL": return raw.map { Float($0) }
        default:
            throw CloudFailure(kind: "error", detail: "output \(name) has datatype \(datatype); supported: FP32, FP64, INT64, INT32, INT8, UINT8, BOOL")
        }
    }

    deinit {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}
