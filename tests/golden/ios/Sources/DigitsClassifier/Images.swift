import Foundation

/// Image pixels to model input: any size (resized bilinearly between pixel centres), grey by BT.601 luma where the
/// model takes one channel, then `value = pixel * pixelScale + pixelOffset` in the manifest's layout. The Python and
/// Kotlin SDKs compute the same.
enum Images {
    /// The first model input from interleaved pixels (`channels` 1, 3 or 4 per pixel, 0...255), row by row.
    static func toInput(_ pixels: [UInt8], width: Int, height: Int, channels: Int, pre: Manifest.Preprocessing,
                        input: TensorSpec) throws -> Tensor {
        guard [1, 3, 4].contains(channels), pixels.count == width * height * channels else {
            throw InvalidInput(description: "\(width) x \(height) x \(channels) pixels need \(width * height * channels) values, got \(pixels.count)")
        }
        let (outH, outW, outC) = try imageSize(input, pre.layout)
        var source = [Float](repeating: 0, count: width * height * outC)
        for i in 0..<(width * height) {
            let p = pixels[(i * channels)..<(i * channels + channels)].map { Float($0) }
            let rgb = channels == 1 ? [p[0], p[0], p[0]] : [p[0], p[1], p[2]]
            if outC == 1 {
                source[i] = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
            } else {
                for c in 0..<3 { source[i * 3 + c] = rgb[c] }
            }
        }
        let resized = resize(source, width: width, height: height, channels: outC, outHeight: outH, outWidth: outW)
        var values = [Float](repeating: 0, count: resized.count)
        for y in 0..<outH {
            for x in 0..<outW {
                for c in 0..<outC {
                    let index = pre.layout == "NCHW" ? (c * outH + y) * outW + x : (y * outW + x) * outC + c
                    values[index] = resized[(y * outW + x) * outC + c] * Float(pre.pixelScale) + Float(pre.pixelOffset)
                }
            }
        }
        return Tensor(values: values, shape: pre.layout == "NCHW" ? [1, outC, outH, outW] : [1, outH, outW, outC])
    }

    private static func imageSize(_ input: TensorSpec, _ layout: String) throws -> (Int, Int, Int) {
        let s = input.shape
        guard s.count == 4, layout == "NCHW" || layout == "NHWC" else {
            throw InvalidInput(description: "input \(input.name) of shape \(s) and layout \(layout) is not an image")
        }
        let dims = layout == "NCHW" ? [s[2], s[3], s[1]] : [s[1], s[2], s[3]]
        guard let h = dims[0], let w = dims[1], let c = dims[2] else {
            throw InvalidInput(description: "input \(input.name) has a dynamic image size; resize the image yourself")
        }
        return (h, w, c)
    }

    /// HWC floats resized by bilinear interpolation between pixel centres.
    static func resize(_ src: [Float], width w: Int, height h: Int, channels c: Int, outHeight: Int, outWidth: Int) -> [Float] {
        func axis(_ o: Int, _ size: Int, _ out: Int) -> (Int, Int, Float) {
            let pos = min(Float(size - 1), max(0, (Float(o) + 0.5) * (Float(size) / Float(out)) - 0.5))
            let low = Int(pos)
            return (low, min(low + 1, size - 1), pos - Float(low))
        }
        var out = [Float](repeating: 0, count: outHeight * outWidth * c)
        for oy in 0..<outHeight {
            let (y0, y1, wy) = axis(oy, h, outHeight)
            for ox in 0..<outWidth {
                let (x0, x1, wx) = axis(ox, w, outWidth)
                for ch in 0..<c {
                    let top = src[(y0 * w + x0) * c + ch] * (1 - wx) + src[(y0 * w + x1) * c + ch] * wx
                    let bottom = src[(y1 * w + x0) * c + ch] * (1 - wx) + src[(y1 * w + x1) * c + ch] * wx
                    out[(oy * outWidth + ox) * c + ch] = top * (1 - wy) + bottom * wy
                }
            }
        }
        return out
    }
}
