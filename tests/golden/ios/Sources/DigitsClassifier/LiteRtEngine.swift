import Foundation
import TensorFlowLite

/// A TensorFlow Lite model (the whole model, or the split head) described by its manifest tensor specs;
/// int8/uint8 tensors are (de)quantized with the specs' parameters.
final class LiteRtEngine: EdgeEngine {
    private let interpreter: Interpreter
    private let inputSpecs: [TensorSpec]
    private let outputSpecs: [TensorSpec]

    init(modelPath: String, inputs: [TensorSpec], outputs: [TensorSpec], threads: Int = 1) throws {
        var options = Interpreter.Options()
        options.threadCount = threads
        interpreter = try Interpreter(modelPath: modelPath, options: options)
        try interpreter.allocateTensors()
        inputSpecs = inputs
        outputSpecs = outputs
    }

    func run(_ inputs: [[Float]]) throws -> [[Float]] {
        for (index, (spec, values)) in zip(inputSpecs, inputs).enumerated() {
            try interpreter.copy(encode(spec, values), toInputAt: index)
        }
        try interpreter.invoke()
        return try outputSpecs.indices.map { index in
            decode(outputSpecs[index], try interpreter.output(at: index).data)
        }
    }

    private func encode(_ spec: TensorSpec, _ values: [Float]) -> Data {
        guard let q = spec.quantization, spec.dtype == "int8" || spec.dtype == "uint8" else {
            return values.withUnsafeBufferPointer { Data(buffer: $0) }
        }
        let low = spec.dtype == "int8" ? -128.0 : 0.0
        let high = spec.dtype == "int8" ? 127.0 : 255.0
        let bytes = values.map { v -> UInt8 in
            let level = min(high, max(low, (Double(v) / q.scale).rounded() + Double(q.zeroPoint)))
            return spec.dtype == "int8" ? UInt8(bitPattern: Int8(level)) : UInt8(level)
        }
        return Data(bytes)
    }

    private func decode(_ spec: TensorSpec, _ data: Data) -> [Float] {
        guard let q = spec.quantization, spec.dtype == "int8" || spec.dtype == "uint8" else {
            return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        return data.map { byte -> Float in
            let level = spec.dtype == "int8" ? Double(Int8(bitPattern: byte)) : Double(byte)
            return Float((level - Double(q.zeroPoint)) * q.scale)
        }
    }
}
