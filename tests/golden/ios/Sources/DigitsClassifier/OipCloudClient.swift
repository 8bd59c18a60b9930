import Foundation
import GRPC
import NIOCore
import NIOSSL

/// How to reach the server: TLS unless the host is loopback (or `tls` says otherwise), an optional custom CA (PEM).
public struct CloudSecurity: Sendable {
    public var tls: Bool?
    public var caCertificatePEM: Data?

    public init(tls: Bool? = nil, caCertificatePEM: Data? = nil) {
        self.tls = tls
        self.caCertificatePEM = caCertificatePEM
    }
}

/// `HOST:PORT` or `[IPv6]:PORT`.
struct Endpoint {
    let host: String
    let port: Int

    init(_ text: String) throws {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (1...65535).contains(port), colon > text.startIndex else {
            throw CloudFailure(kind: .error, detail: "cloud endpoint \(text) is not HOST:PORT")
        }
        host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        self.port = port
    }

    /// localhost, 127.0.0.0/8 or ::1.
    var isLoopback: Bool {
        if host.lowercased() == "localhost" || host == "::1" { return true }
        let parts = host.split(separator: ".")
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}

/// Open Inference Protocol v2 `/inference.GRPCInferenceService/ModelInfer` over grpc-swift, with raw little-endian contents in each
/// tensor's datatype and each tensor's own shape (dynamic dimensions as given). The event-loop group comes from
/// `PlatformSupport` (Network.framework where it can); a token goes only over TLS or to loopback and is never
/// part of a description or an error.
final class OipCloudClient: CloudClient {
    private let cloud: Manifest.Cloud
    private let group: EventLoopGroup
    private let channel: GRPCChannel
    private let client: GRPCAnyServiceClient

    init(endpoint: String, cloud: Manifest.Cloud, token: String? = nil, security: CloudSecurity = CloudSecurity()) throws {
        let target = try Endpoint(endpoint)
        let tls = security.tls ?? !target.isLoopback
        if token != nil && !tls && !target.isLoopback {
            throw CloudFailure(kind: .error, detail: "a token is sent only over TLS or to a loopback endpoint; \(endpoint) has TLS off")
        }
        self.cloud = cloud
        let transport: GRPCChannelPool.Configuration.TransportSecurity
        if tls {
            let configuration = try OipCloudClient.tlsConfiguration(security.caCertificatePEM)
            group = PlatformSupport.makeEventLoopGroup(compatibleWith: configuration, loopCount: 1)
            transport = .tls(configuration)
        } else {
            group = PlatformSupport.makeEventLoopGroup(loopCount: 1)
            transport = .plaintext
        }
        channel = try GRPCChannelPool.with(target: .host(target.host, port: target.port), transportSecurity: transport, eventLoopGroup: group)
        var options = CallOptions()
        if let token = token {
            options.customMetadata.add(name: "authorization", value: "Bearer \(token)")
        }
        client = GRPCAnyServiceClient(channel: channel, defaultCallOptions: options)
    }

    private static func tlsConfiguration(_ caPEM: Data?) throws -> GRPCTLSConfiguration {
        guard let caPEM = caPEM else { return GRPCTLSConfiguration.makeClientDefault(for: .best) }
        let roots = try NIOSSLCertificate.fromPEMBytes(Array(caPEM))
        return GRPCTLSConfiguration.makeClientConfigurationBackedByNIOSSL(trustRoots: .certificates(roots))
    }

    func infer(_ inputs: [Tensor], timeoutMs: Int) async throws -> [Tensor] {
        var request = DigitsClassifierOIP_ModelInferRequest()
        request.modelName = cloud.modelName
        request.modelVersion = cloud.modelVersion
        for (spec, tensor) in zip(cloud.inputs, inputs) {
            var entry = DigitsClassifierOIP_ModelInferRequest_InferInputTensor()
            entry.name = spec.name
            entry.datatype = spec.datatype
            entry.shape = tensor.shape.map { Int64($0) }
            request.inputs.append(entry)
            request.rawInputContents.append(try encode(spec, tensor.values))
        }
        var options = client.defaultCallOptions
        options.timeLimit = .timeout(.milliseconds(Int64(timeoutMs)))
        let response: DigitsClassifierOIP_ModelInferResponse
        do {
            response = try await client.performAsyncUnaryCall(
                path: DigitsClassifierOIP_OIP.modelInferPath, request: request, callOptions: options,
                responseType: DigitsClassifierOIP_ModelInferResponse.self)
        } catch let status as GRPCStatus {
            if status.code == .cancelled || Task.isCancelled { throw CancellationError() }
            switch status.code {
            case .deadlineExceeded: throw CloudFailure(kind: .timeout, detail: status.message ?? "")
            case .unavailable: throw CloudFailure(kind: .unavailable, detail: status.message ?? "")
            default: throw CloudFailure(kind: .error, detail: "\(status.code): \(status.message ?? "")")
            }
        }
        var byName: [String: Tensor] = [:]
        for (tensor, raw) in zip(response.outputs, response.rawOutputContents) {
            byName[tensor.name] = Tensor(values: try decode(tensor.name, tensor.datatype, raw), shape: tensor.shape.map { Int($0) })
        }
        return try cloud.outputs.map { spec in
            guard let tensor = byName[spec.name] else { throw CloudFailure(kind: .error, detail: "response lacks output \(spec.name)") }
            return tensor
        }
    }

    /// Close the channel and its event-loop group without blocking a thread.
    func close() async {
        try? await channel.close().get()
        try? await group.shutdownGracefully()
    }

    private func encode(_ spec: OipTensor, _ values: [Float]) throws -> Data {
        func bytes<T>(_ array: [T]) -> Data { array.withUnsafeBufferPointer { Data(buffer: $0) } }
        switch spec.datatype {
        case "FP32": return bytes(values)
        case "FP64": return bytes(values.map { Double($0) })
        case "INT64": return bytes(values.map { Int64(clamping: Int($0.isFinite ? $0.rounded(.towardZero) : 0)) })
        case "INT32": return bytes(values.map { Int32(clamping: Int($0.isFinite ? $0.rounded(.towardZero) : 0)) })
        case "INT8": return Data(values.map { UInt8(bitPattern: Int8(clamping: Int($0.isFinite ? $0 : 0))) })
        case "UINT8", "BOOL": return Data(values.map { UInt8(clamping: Int($0.isFinite ? $0 : 0)) })
        default:
            throw CloudFailure(kind: .error, detail: "input \(spec.name) has datatype \(spec.datatype); supported: FP32, FP64, INT64, INT32, INT8, UINT8, BOOL")
        }
    }

    private func decode(_ name: String, _ datatype: String, _ raw: Data) throws -> [Float] {
        func load<T>(_ type: T.Type, _ convert: (T) -> Float) -> [Float] {
            let width = MemoryLayout<T>.size
            return raw.withUnsafeBytes { buffer in
                (0..<(buffer.count / width)).map { convert(buffer.loadUnaligned(fromByteOffset: $0 * width, as: T.self)) }
            }
        }
        switch datatype {
        case "FP32": return load(Float.self) { $0 }
        case "FP64": return load(Double.self) { Float($0) }
        case "INT64": return load(Int64.self) { Float($0) }
        case "INT32": return load(Int32.self) { Float($0) }
        case "INT8": return raw.map { Float(Int8(bitPattern: $0)) }
        case "UINT8", "BOOL": return raw.map { Float($0) }
        default:
            throw CloudFailure(kind: .error, detail: "output \(name) has datatype \(datatype); supported: FP32, FP64, INT64, INT32, INT8, UINT8, BOOL")
        }
    }
}
