// The Open Inference Protocol v2 messages DigitsClassifier sends and reads, rendered by EdgeForge from
// protos/inference/grpc_service.proto in the form protoc-gen-swift gives SwiftProtobuf messages (internal, with
// this SDK's own prefix DigitsClassifierOIP_ so two SDKs never share a type). Wire names are the standard's:
// inference.<Message>, and the method /inference.GRPCInferenceService/ModelInfer. Fields the SDK does not use are left out;
// a reader keeps them as unknown fields.

import Foundation
import SwiftProtobuf

fileprivate struct _GeneratedWithProtocGenSwiftVersion: SwiftProtobuf.ProtobufAPIVersionCheck {
    struct _2: SwiftProtobuf.ProtobufAPIVersion_2 {}
    typealias Version = _2
}

fileprivate let _protobuf_package = "inference"

enum DigitsClassifierOIP_OIP {
    static let modelInferPath = "/inference.GRPCInferenceService/ModelInfer"
}

struct DigitsClassifierOIP_ModelInferRequest: Sendable {
    var modelName: String = String()
    var modelVersion: String = String()
    var id: String = String()
    var inputs: [DigitsClassifierOIP_ModelInferRequest_InferInputTensor] = []
    var rawInputContents: [Data] = []
    var unknownFields = SwiftProtobuf.UnknownStorage()

    init() {}
}

extension DigitsClassifierOIP_ModelInferRequest: SwiftProtobuf.Message, SwiftProtobuf._MessageImplementationBase, SwiftProtobuf._ProtoNameProviding {
    static let protoMessageName: String = _protobuf_package + ".ModelInferRequest"
    static let _protobuf_nameMap: SwiftProtobuf._NameMap = [
        1: .standard(proto: "model_name"),
        2: .standard(proto: "model_version"),
        3: .same(proto: "id"),
        5: .same(proto: "inputs"),
        7: .standard(proto: "raw_input_contents"),
    ]

    mutating func decodeMessage<D: SwiftProtobuf.Decoder>(decoder: inout D) throws {
        while let fieldNumber = try decoder.nextFieldNumber() {
            switch fieldNumber {
            case 1: try { try decoder.decodeSingularStringField(value: &self.modelName) }()
            case 2: try { try decoder.decodeSingularStringField(value: &self.modelVersion) }()
            case 3: try { try decoder.decodeSingularStringField(value: &self.id) }()
            case 5: try { try decoder.decodeRepeatedMessageField(value: &self.inputs) }()
            case 7: try { try decoder.decodeRepeatedBytesField(value: &self.rawInputContents) }()
            default: break
            }
        }
    }

    func traverse<V: SwiftProtobuf.Visitor>(visitor: inout V) throws {
        if !self.modelName.isEmpty {
            try visitor.visitSingularStringField(value: self.modelName, fieldNumber: 1)
        }
        if !self.modelVersion.isEmpty {
            try visitor.visitSingularStringField(value: self.modelVersion, fieldNumber: 2)
        }
        if !self.id.isEmpty {
            try visitor.visitSingularStringField(value: self.id, fieldNumber: 3)
        }
        if !self.inputs.isEmpty {
            try visitor.visitRepeatedMessageField(value: self.inputs, fieldNumber: 5)
        }
        if !self.rawInputContents.isEmpty {
            try visitor.visitRepeatedBytesField(value: self.rawInputContents, fieldNumber: 7)
        }
        try unknownFields.traverse(visitor: &visitor)
    }

    static func == (lhs: DigitsClassifierOIP_ModelInferRequest, rhs: DigitsClassifierOIP_ModelInferRequest) -> Bool {
        if lhs.modelName != rhs.modelName { return false }
        if lhs.modelVersion != rhs.modelVersion { return false }
        if lhs.id != rhs.id { return false }
        if lhs.inputs != rhs.inputs { return false }
        if lhs.rawInputContents != rhs.rawInputContents { return false }
        if lhs.unknownFields != rhs.unknownFields { return false }
        return true
    }
}

struct DigitsClassifierOIP_ModelInferRequest_InferInputTensor: Sendable {
    var name: String = String()
    var datatype: String = String()
    var shape: [Int64] = []
    var unknownFields = SwiftProtobuf.UnknownStorage()

    init() {}
}

extension DigitsClassifierOIP_ModelInferRequest_InferInputTensor: SwiftProtobuf.Message, SwiftProtobuf._MessageImplementationBase, SwiftProtobuf._ProtoNameProviding {
    static let protoMessageName: String = _protobuf_package + ".ModelInferRequest.InferInputTensor"
    static let _protobuf_nameMap: SwiftProtobuf._NameMap = [
        1: .same(proto: "name"),
        2: .same(proto: "datatype"),
        3: .same(proto: "shape"),
    ]

    mutating func decodeMessage<D: SwiftProtobuf.Decoder>(decoder: inout D) throws {
        while let fieldNumber = try decoder.nextFieldNumber() {
            switch fieldNumber {
            case 1: try { try decoder.decodeSingularStringField(value: &self.name) }()
            case 2: try { try decoder.decodeSingularStringField(value: &self.datatype) }()
            case 3: try { try decoder.decodeRepeatedInt64Field(value: &self.shape) }()
            default: break
            }
        }
    }

    func traverse<V: SwiftProtobuf.Visitor>(visitor: inout V) throws {
        if !self.name.isEmpty {
            try visitor.visitSingularStringField(value: self.name, fieldNumber: 1)
        }
        if !self.datatype.isEmpty {
            try visitor.visitSingularStringField(value: self.datatype, fieldNumber: 2)
        }
        if !self.shape.isEmpty {
            try visitor.visitPackedInt64Field(value: self.shape, fieldNumber: 3)
        }
        try unknownFields.traverse(visitor: &visitor)
    }

    static func == (lhs: DigitsClassifierOIP_ModelInferRequest_InferInputTensor, rhs: DigitsClassifierOIP_ModelInferRequest_InferInputTensor) -> Bool {
        if lhs.name != rhs.name { return false }
        if lhs.datatype != rhs.datatype { return false }
        if lhs.shape != rhs.shape { return false }
        if lhs.unknownFields != rhs.unknownFields { return false }
        return true
    }
}

struct DigitsClassifierOIP_ModelInferResponse: Sendable {
    var modelName: String = String()
    var modelVersion: String = String()
    var id: String = String()
    var outputs: [DigitsClassifierOIP_ModelInferResponse_InferOutputTensor] = []
    var rawOutputContents: [Data] = []
    var unknownFields = SwiftProtobuf.UnknownStorage()

    init() {}
}

extension DigitsClassifierOIP_ModelInferResponse: SwiftProtobuf.Message, SwiftProtobuf._MessageImplementationBase, SwiftProtobuf._ProtoNameProviding {
    static let protoMessageName: String = _protobuf_package + ".ModelInferResponse"
    static let _protobuf_nameMap: SwiftProtobuf._NameMap = [
        1: .standard(proto: "model_name"),
        2: .standard(proto: "model_version"),
        3: .same(proto: "id"),
        5: .same(proto: "outputs"),
        6: .standard(proto: "raw_output_contents"),
    ]

    mutating func decodeMessage<D: SwiftProtobuf.Decoder>(decoder: inout D) throws {
        while let fieldNumber = try decoder.nextFieldNumber() {
            switch fieldNumber {
            case 1: try { try decoder.decodeSingularStringField(value: &self.modelName) }()
            case 2: try { try decoder.decodeSingularStringField(value: &self.modelVersion) }()
            case 3: try { try decoder.decodeSingularStringField(value: &self.id) }()
            case 5: try { try decoder.decodeRepeatedMessageField(value: &self.outputs) }()
            case 6: try { try decoder.decodeRepeatedBytesField(value: &self.rawOutputContents) }()
            default: break
            }
        }
    }

    func traverse<V: SwiftProtobuf.Visitor>(visitor: inout V) throws {
        if !self.modelName.isEmpty {
            try visitor.visitSingularStringField(value: self.modelName, fieldNumber: 1)
        }
        if !self.modelVersion.isEmpty {
            try visitor.visitSingularStringField(value: self.modelVersion, fieldNumber: 2)
        }
        if !self.id.isEmpty {
            try visitor.visitSingularStringField(value: self.id, fieldNumber: 3)
        }
        if !self.outputs.isEmpty {
            try visitor.visitRepeatedMessageField(value: self.outputs, fieldNumber: 5)
        }
        if !self.rawOutputContents.isEmpty {
            try visitor.visitRepeatedBytesField(value: self.rawOutputContents, fieldNumber: 6)
        }
        try unknownFields.traverse(visitor: &visitor)
    }

    static func == (lhs: DigitsClassifierOIP_ModelInferResponse, rhs: DigitsClassifierOIP_ModelInferResponse) -> Bool {
        if lhs.modelName != rhs.modelName { return false }
        if lhs.modelVersion != rhs.modelVersion { return false }
        if lhs.id != rhs.id { return false }
        if lhs.outputs != rhs.outputs { return false }
        if lhs.rawOutputContents != rhs.rawOutputContents { return false }
        if lhs.unknownFields != rhs.unknownFields { return false }
        return true
    }
}

struct DigitsClassifierOIP_ModelInferResponse_InferOutputTensor: Sendable {
    var name: String = String()
    var datatype: String = String()
    var shape: [Int64] = []
    var unknownFields = SwiftProtobuf.UnknownStorage()

    init() {}
}

extension DigitsClassifierOIP_ModelInferResponse_InferOutputTensor: SwiftProtobuf.Message, SwiftProtobuf._MessageImplementationBase, SwiftProtobuf._ProtoNameProviding {
    static let protoMessageName: String = _protobuf_package + ".ModelInferResponse.InferOutputTensor"
    static let _protobuf_nameMap: SwiftProtobuf._NameMap = [
        1: .same(proto: "name"),
        2: .same(proto: "datatype"),
        3: .same(proto: "shape"),
    ]

    mutating func decodeMessage<D: SwiftProtobuf.Decoder>(decoder: inout D) throws {
        while let fieldNumber = try decoder.nextFieldNumber() {
            switch fieldNumber {
            case 1: try { try decoder.decodeSingularStringField(value: &self.name) }()
            case 2: try { try decoder.decodeSingularStringField(value: &self.datatype) }()
            case 3: try { try decoder.decodeRepeatedInt64Field(value: &self.shape) }()
            default: break
            }
        }
    }

    func traverse<V: SwiftProtobuf.Visitor>(visitor: inout V) throws {
        if !self.name.isEmpty {
            try visitor.visitSingularStringField(value: self.name, fieldNumber: 1)
        }
        if !self.datatype.isEmpty {
            try visitor.visitSingularStringField(value: self.datatype, fieldNumber: 2)
        }
        if !self.shape.isEmpty {
            try visitor.visitPackedInt64Field(value: self.shape, fieldNumber: 3)
        }
        try unknownFields.traverse(visitor: &visitor)
    }

    static func == (lhs: DigitsClassifierOIP_ModelInferResponse_InferOutputTensor, rhs: DigitsClassifierOIP_ModelInferResponse_InferOutputTensor) -> Bool {
        if lhs.name != rhs.name { return false }
        if lhs.datatype != rhs.datatype { return false }
        if lhs.shape != rhs.shape { return false }
        if lhs.unknownFields != rhs.unknownFields { return false }
        return true
    }
}
