"""Inputs checked against the manifest before anything runs, and the one quantizer every path uses."""

from __future__ import annotations

import numpy as np

INTEGER_DTYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
                  "bool": np.bool_}


class InvalidInput(ValueError):
    """An input that does not fit the manifest (count, shape or values for the dtype); nothing was run."""


def check_inputs(specs: list, given: list) -> list:
    """``given`` (one array per manifest input, with or without the batch axis) as float32 arrays of one sample
    each, batch axis of 1 included; raise :class:`InvalidInput` naming the input and what was wrong."""
    if len(given) != len(specs):
        raise InvalidInput(f"the model takes {len(specs)} input(s) ({', '.join(s['name'] for s in specs)}), got {len(given)}")
    return [_check(spec, value) for spec, value in zip(specs, given)]


def _check(spec: dict, value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise InvalidInput(f"input {spec['name']!r} must hold numbers, got dtype {array.dtype}")
    shape = spec["shape"]
    if array.ndim == len(shape) - 1:
        array = array[None]
    dims = list(array.shape)
    fits = len(dims) == len(shape) and dims[0] == 1 and all(
        d >= 1 and (s is None or s == d) for s, d in zip(shape[1:], dims[1:])
    )
    if not fits:
        wanted = ["n" if s is None else s for s in shape[1:]]
        raise InvalidInput(f"input {spec['name']!r} must have shape {wanted} (or [1, ...]), got {list(np.shape(value))}")
    array = array.astype(np.float32)
    if spec["dtype"] in INTEGER_DTYPES and spec["quantization"] is None:
        info = np.iinfo(INTEGER_DTYPES[spec["dtype"]]) if spec["dtype"] != "bool" else np.iinfo(np.uint8)
        low, high = (0, 1) if spec["dtype"] == "bool" else (info.min, info.max)
        if not (np.all(np.isfinite(array)) and np.all(array == np.round(array)) and array.min() >= low and array.max() <= high):
            raise InvalidInput(f"input {spec['name']!r} is {spec['dtype']}: its values must be whole numbers in {low}..{high}")
    return array


def quantize(values, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """``clip(round_half_to_even(float32(x) / float32(scale)) + zero_point)`` to ``dtype``'s range, as ``dtype``."""
    info = np.iinfo(INTEGER_DTYPES[dtype])
    levels = np.round(np.asarray(values, np.float32) / np.float32(scale)).astype(np.float64) + zero_point
    return np.clip(levels, info.min, info.max).astype(INTEGER_DTYPES[dtype])


def dequantize(levels, scale: float, zero_point: int) -> np.ndarray:
    """``(q - zero_point) * scale`` as float32."""
    return ((np.asarray(levels, np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)
