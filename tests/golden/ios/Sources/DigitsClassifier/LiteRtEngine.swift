import Foundation
import LiteRT

/// A LiteRT `CompiledModel` (the whole model, or the split head) on the first accelerator set that compiles it:
/// gpu then cpu (from the profile's delegates; the CPU is the fallback). int8/uint8
/// tensors are (de)quantized with the manifest's scale and zero point. Not thread-safe: the SDK's actor runs it.
final class LiteRtEngine: EdgeEngine {
    private let model: CompiledModel
    private let inputSpecs: [TensorSpec]
    private let outputSpecs: [TensorSpec]
    private let inputBuffers: [TensorBuffer]
    private let outputBuffers: [TensorBuffer]

    static let acceleratorChoices: [Set<Accelerator>] = [
        [.gpu, .cpu],
        [.cpu],
    ]

    init(modelURL: URL, environment: Environment, inputs: [TensorSpec], outputs: [TensorSpec]) throws {
        var compiled: CompiledModel? = nil
        var lastError: Error? = nil
        for choice in LiteRtEngine.acceleratorChoices where compiled == nil {
            do {
                let options = try Options()
                try options.setHardwareAccelerators(choice)
                compiled = try CompiledModel(filePath: modelURL.path, environment: environment, options: options)
            } catch {
                lastError = error
            }
        }
        guard let model = compiled else { throw lastError ?? LiteRtError.unknown }
        self.model = model
        inputSpecs = inputs
        outputSpecs = outputs
        inputBuffers = try model.createInputBuffers()
        outputBuffers = try model.createOutputBuffers()
    }

    func run(_ inputs: [Tensor]) throws -> [Tensor] {
        for (index, (spec, tensor)) in zip(inputSpecs, inputs).enumerated() {
            guard !spec.shape.contains(where: { $0 == nil }) else {
                throw InvalidInput(description: "input \(spec.name) has dynamic dimensions; LiteRT compiled it with fixed ones")
            }
            try write(inputBuffers[index], spec, tensor.values)
        }
        try model.run(inputs: inputBuffers, outputs: outputBuffers)
        return try outputSpecs.enumerated().map { index, spec in
            Tensor(values: try read(outputBuffers[index], spec), shape: spec.shape.map { $0 ?? 1 })
        }
    }

    private func write(_ buffer: TensorBuffer, _ spec: TensorSpec, _ values: [Float]) throws {
        if let q = spec.quantization, spec.dtype == "int8" {
            try buffer.write(Quantize.levels(values, scale: q.scale, zeroPoint: q.zeroPoint, dtype: "int8").map { Int8($0) })
        } else if let q = spec.quantization, spec.dtype == "uint8" {
            try buffer.write(Quantize.levels(values, scale: q.scale, zeroPoint: q.zeroPoint, dtype: "uint8").map { UInt8($0) })
        } else if spec.dtype == "int32" {
            try buffer.write(values.map { Int32(clamping: Int($0.isFinite ? $0 : 0)) })
        } else {
            try buffer.write(values)
        }
    }

    private func read(_ buffer: TensorBuffer, _ spec: TensorSpec) throws -> [Float] {
        if let q = spec.quantization, spec.dtype == "int8" {
            let levels: [Int8] = try buffer.read()
            return Quantize.dequantize(levels.map { Int($0) }, scale: q.scale, zeroPoint: q.zeroPoint)
        }
        if let q = spec.quantization, spec.dtype == "uint8" {
            let levels: [UInt8] = try buffer.read()
            return Quantize.dequantize(levels.map { Int($0) }, scale: q.scale, zeroPoint: q.zeroPoint)
        }
        if spec.dtype == "int32" {
            let values: [Int32] = try buffer.read()
            return values.map { Float($0) }
        }
        return try buffer.read()
    }
}
