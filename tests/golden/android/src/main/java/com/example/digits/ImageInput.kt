package com.example.digits

import android.graphics.Bitmap

/** Typed image input: a bitmap (already at the model's input size) to the float layout the model expects. */
object ImageInput {
    fun fromBitmap(bitmap: Bitmap, pre: Preprocessing, input: TensorSpec): FloatArray {
        val width = bitmap.width
        val height = bitmap.height
        val pixels = IntArray(width * height)
        bitmap.getPixels(pixels, 0, width, 0, 0, width, height)
        val channels = pre.channels ?: 3
        val argb = IntArray(pixels.size * channels)
        for (i in pixels.indices) {
            val p = pixels[i]
            val rgb = intArrayOf((p shr 16) and 0xff, (p shr 8) and 0xff, p and 0xff)
            for (c in 0 until channels) argb[i * channels + c] = if (channels == 1) (rgb[0] + rgb[1] + rgb[2]) / 3 else rgb[c]
        }
        return fromPixels(argb, width, height, channels, pre, input)
    }

    /** Interleaved HWC pixel values (0..255) to model input floats: value = pixel * scale + offset, in NCHW or NHWC. */
    fun fromPixels(pixels: IntArray, width: Int, height: Int, channels: Int, pre: Preprocessing, input: TensorSpec): FloatArray {
        val out = FloatArray(width * height * channels)
        if (out.size != input.sampleSize) throw IllegalArgumentException("a ${width}x${height}x$channels image does not fit input ${input.name} (${input.sampleSize} values)")
        for (y in 0 until height) for (x in 0 until width) for (c in 0 until channels) {
            val value = (pixels[(y * width + x) * channels + c] * pre.pixelScale + pre.pixelOffset).toFloat()
            val index = if (pre.layout == "NCHW") (c * height + y) * width + x else (y * width + x) * channels + c
            out[index] = value
        }
        return out
    }
}
