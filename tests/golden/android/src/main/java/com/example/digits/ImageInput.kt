package com.example.digits

import android.graphics.Bitmap
import android.os.Build

/**
 * Images to model input: any size (resized bilinearly between pixel centres), any bitmap config (HARDWARE bitmaps
 * are copied to ARGB_8888 first), grey by BT.601 luma where the model takes one channel, then
 * `value = pixel * pixelScale + pixelOffset` in the manifest's layout. The Python and Swift SDKs compute the same.
 */
object ImageInput {
    private const val LUMA_R = 0.299f
    private const val LUMA_G = 0.587f
    private const val LUMA_B = 0.114f

    /** The first model input from [bitmap]. */
    @JvmStatic
    fun fromBitmap(bitmap: Bitmap, pre: Preprocessing, input: TensorSpec): Tensor {
        val readable = if (Build.VERSION.SDK_INT >= 26 && bitmap.config == Bitmap.Config.HARDWARE) {
            bitmap.copy(Bitmap.Config.ARGB_8888, false) ?: throw IllegalArgumentException("cannot read a HARDWARE bitmap")
        } else bitmap
        val pixels = IntArray(readable.width * readable.height)
        readable.getPixels(pixels, 0, readable.width, 0, 0, readable.width, readable.height)
        if (readable !== bitmap) readable.recycle()
        return fromArgb(pixels, bitmap.width, bitmap.height, pre, input)
    }

    /** The first model input from packed ARGB pixels (Android's `Bitmap.getPixels` format), row by row. */
    @JvmStatic
    fun fromArgb(argb: IntArray, width: Int, height: Int, pre: Preprocessing, input: TensorSpec): Tensor {
        if (argb.size != width * height) throw InvalidInputException("$width x $height pixels need ${width * height} values, got ${argb.size}")
        val size = imageSize(input, pre.layout)
        val grey = size.third == 1
        val source = FloatArray(width * height * size.third)
        for (i in argb.indices) {
            val p = argb[i]
            val r = ((p shr 16) and 0xff).toFloat()
            val g = ((p shr 8) and 0xff).toFloat()
            val b = (p and 0xff).toFloat()
            if (grey) source[i] = LUMA_R * r + LUMA_G * g + LUMA_B * b else {
                source[i * 3] = r
                source[i * 3 + 1] = g
                source[i * 3 + 2] = b
            }
        }
        return layout(resize(source, width, height, size.third, size.first, size.second), size, pre)
    }

    /** (height, width, channels) of the image the first input takes. */
    private fun imageSize(input: TensorSpec, layout: String): Triple<Int, Int, Int> {
        val s = input.shape
        if (s.size != 4 || (layout != "NCHW" && layout != "NHWC")) throw InvalidInputException("input ${input.name} of shape $s and layout $layout is not an image")
        val dims = if (layout == "NCHW") listOf(s[2], s[3], s[1]) else listOf(s[1], s[2], s[3])
        if (dims.any { it == null }) throw InvalidInputException("input ${input.name} has a dynamic image size $s; resize the image yourself")
        return Triple(dims[0]!!, dims[1]!!, dims[2]!!)
    }

    /** HWC floats resized to [outH] x [outW] by bilinear interpolation between pixel centres. */
    @JvmStatic
    fun resize(src: FloatArray, w: Int, h: Int, c: Int, outH: Int, outW: Int): FloatArray {
        val out = FloatArray(outH * outW * c)
        for (oy in 0 until outH) {
            val sy = clamp((oy + 0.5f) * (h.toFloat() / outH) - 0.5f, h)
            val y0 = sy.toInt()
            val y1 = Math.min(y0 + 1, h - 1)
            val wy = sy - y0
            for (ox in 0 until outW) {
                val sx = clamp((ox + 0.5f) * (w.toFloat() / outW) - 0.5f, w)
                val x0 = sx.toInt()
                val x1 = Math.min(x0 + 1, w - 1)
                val wx = sx - x0
                for (ch in 0 until c) {
                    val top = src[(y0 * w + x0) * c + ch] * (1 - wx) + src[(y0 * w + x1) * c + ch] * wx
                    val bottom = src[(y1 * w + x0) * c + ch] * (1 - wx) + src[(y1 * w + x1) * c + ch] * wx
                    out[(oy * outW + ox) * c + ch] = top * (1 - wy) + bottom * wy
                }
            }
        }
        return out
    }

    private fun clamp(v: Float, size: Int): Float = Math.max(0f, Math.min((size - 1).toFloat(), v))

    private fun layout(hwc: FloatArray, size: Triple<Int, Int, Int>, pre: Preprocessing): Tensor {
        val (h, w, c) = size
        val out = FloatArray(hwc.size)
        val scale = pre.pixelScale.toFloat()
        val offset = pre.pixelOffset.toFloat()
        for (y in 0 until h) for (x in 0 until w) for (ch in 0 until c) {
            val index = if (pre.layout == "NCHW") (ch * h + y) * w + x else (y * w + x) * c + ch
            out[index] = hwc[(y * w + x) * c + ch] * scale + offset
        }
        val shape = if (pre.layout == "NCHW") intArrayOf(1, c, h, w) else intArrayOf(1, h, w, c)
        return Tensor(out, shape)
    }
}
