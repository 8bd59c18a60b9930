"""Image pixels to model input: resized (bilinear, pixel centres), grey by BT.601 luma, scaled, laid out.

The Kotlin and Swift SDKs compute the same values the same way, so one image gives one input on every platform.
"""

from __future__ import annotations

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def image_size(spec: dict, layout: str) -> tuple:
    """(height, width, channels) the model's first input wants, from its shape and layout."""
    shape = spec["shape"]
    if len(shape) != 4 or layout not in ("NCHW", "NHWC"):
        raise ValueError(f"input {spec['name']!r} of shape {shape} and layout {layout} is not an image")
    h, w, c = (shape[2], shape[3], shape[1]) if layout == "NCHW" else (shape[1], shape[2], shape[3])
    if None in (h, w, c):
        raise ValueError(f"input {spec['name']!r} has a dynamic image size {shape}; resize the image yourself")
    return h, w, c


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` (HxWxC float) resized to ``height`` x ``width`` by bilinear interpolation between pixel centres."""
    def axis(out: int, size: int):
        pos = np.clip((np.arange(out, dtype=np.float32) + 0.5) * (size / out) - 0.5, 0, size - 1)
        low = np.floor(pos).astype(int)
        return low, np.minimum(low + 1, size - 1), (pos - low).astype(np.float32)

    y0, y1, wy = axis(height, image.shape[0])
    x0, x1, wx = axis(width, image.shape[1])
    top = image[y0][:, x0] * (1 - wx)[None, :, None] + image[y0][:, x1] * wx[None, :, None]
    bottom = image[y1][:, x0] * (1 - wx)[None, :, None] + image[y1][:, x1] * wx[None, :, None]
    return top * (1 - wy)[:, None, None] + bottom * wy[:, None, None]


def to_input(pixels, pre: dict, spec: dict) -> np.ndarray:
    """Pixels (HxW grey or HxWxC RGB/RGBA, 0..255) as the model's first input, batch axis of 1 included."""
    height, width, channels = image_size(spec, pre["layout"])
    image = np.asarray(pixels, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"pixels must be HxW, HxWx3 or HxWx4, got shape {list(np.shape(pixels))}")
    image = image[..., :3]
    if channels == 1 and image.shape[2] == 3:
        image = (image @ LUMA)[..., None]
    elif channels == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    image = resize(image, height, width) * np.float32(pre["pixel_scale"]) + np.float32(pre["pixel_offset"])
    if pre["layout"] == "NCHW":
        image = np.transpose(image, (2, 0, 1))
    return image[None].astype(np.float32)
