import Foundation

/// One sample's values (row-major) and its shape, batch axis of 1 included.
public struct Tensor: Sendable {
    public let values: [Float]
    public let shape: [Int]

    public init(values: [Float], shape: [Int]) {
        self.values = values
        self.shape = shape
    }

    /// `values` in the shape of `spec`, its dynamic dimensions taken from `dims` (one per dynamic dimension).
    public static func of(_ spec: TensorSpec, _ values: [Float], dims: [Int] = []) -> Tensor {
        var next = 0
        let shape = spec.shape.enumerated().map { i, d -> Int in
            if let d = d { return d }
            if i == 0 { return 1 }
            defer { next += 1 }
            return next < dims.count ? dims[next] : values.count
        }
        return Tensor(values: values, shape: shape)
    }
}

/// An input that does not fit the manifest (count, shape, or values for the dtype); nothing was run.
public struct InvalidInput: Error, CustomStringConvertible {
    public let description: String
}

let integerRanges: [String: (Double, Double)] = [
    "int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int32": (-2147483648, 2147483647),
    "int64": (-9.223372036854776e18, 9.223372036854776e18), "bool": (0, 1),
]

/// `given` checked against `specs`: count, rank, batch of 1, static dimensions, values filling the shape, whole
/// numbers in range for integer (not quantized) inputs. Returns the tensors with their batch axis.
func checkInputs(_ specs: [TensorSpec], _ given: [Tensor]) throws -> [Tensor] {
    guard given.count == specs.count else {
        let names = specs.map { $0.name }.joined(separator: ", ")
        throw InvalidInput(description: "the model takes \(specs.count) input(s) (\(names)), got \(given.count)")
    }
    return try zip(specs, given).map { try checkInput($0, $1) }
}

private func checkInput(_ spec: TensorSpec, _ tensor: Tensor) throws -> Tensor {
    let dims = tensor.shape.count == spec.shape.count - 1 ? [1] + tensor.shape : tensor.shape
    let fits = dims.count == spec.shape.count && dims.first == 1
        && (1..<max(dims.count, 1)).allSatisfy { i in dims[i] >= 1 && (spec.shape[i] == nil || spec.shape[i] == dims[i]) }
    guard fits else {
        let wanted = spec.shape.dropFirst().map { $0.map(String.init) ?? "n" }
        throw InvalidInput(description: "input \(spec.name) must have shape \(wanted) (or [1, ...]), got \(tensor.shape)")
    }
    let size = dims.reduce(1, *)
    guard tensor.values.count == size else {
        throw InvalidInput(description: "input \(spec.name) of shape \(dims) needs \(size) values, got \(tensor.values.count)")
    }
    if let range = integerRanges[spec.dtype], spec.quantization == nil {
        let bad = tensor.values.contains { v in v.isNaN || v != v.rounded() || Double(v) < range.0 || Double(v) > range.1 }
        if bad {
            throw InvalidInput(description: "input \(spec.name) is \(spec.dtype): its values must be whole numbers in \(Int64(range.0))..\(Int64(range.1))")
        }
    }
    return Tensor(values: tensor.values, shape: dims)
}

/// The one quantizer of every EdgeForge SDK: `clip(round_half_even(x / scale) + zeroPoint)`, the division in
/// float32. Values are clamped before any integer conversion, so nothing traps on out-of-range input.
public enum Quantize {
    public static func levels(_ values: [Float], scale: Double, zeroPoint: Int, dtype: String) -> [Int] {
        let (low, high) = integerRanges[dtype] ?? (-128, 127)
        let s = Float(scale)
        return values.map { v in
            let level = Double((v / s).rounded(.toNearestOrEven)) + Double(zeroPoint)
            return level.isNaN ? Int(zeroPoint) : Int(min(high, max(low, level)))
        }
    }

    public static func dequantize(_ levels: [Int], scale: Double, zeroPoint: Int) -> [Float] {
        levels.map { Float(Double($0 - zeroPoint) * scale) }
    }
}
