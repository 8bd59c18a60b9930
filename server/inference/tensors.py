"""OIP v2 tensors <-> numpy: datatype names, validation of inputs, encoding of outputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compressor.errors import InvalidInputError

# OIP v2 datatype -> numpy dtype (BYTES is not served: our models take numeric tensors).
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_BY_NUMPY = {v: k for k, v in DATATYPES.items()}
# InferTensorContents field holding each datatype when raw_input_contents is not used.
_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}
_ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
}


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, OIP datatype and shape (-1 for a dynamic dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @classmethod
    def from_ort(cls, arg) -> TensorSpec:
        if arg.type not in _ORT_TYPES:
            raise InvalidInputError(f"tensor {arg.name!r} has type {arg.type}; servable types: {', '.join(_ORT_TYPES)}")
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
        return cls(arg.name, _ORT_TYPES[arg.type], shape)

    def describe(self) -> str:
        return f"{self.name} {self.datatype}{list(self.shape)}"

    def check(self, datatype: str, shape: tuple[int, ...]) -> None:
        """Raise InvalidInputError unless a tensor of ``datatype``/``shape`` fits this spec."""
        if datatype != self.datatype:
            raise InvalidInputError(f"input {self.name!r} has datatype {datatype}; the model expects {self.describe()}")
        fits = len(shape) == len(self.shape) and all(
            got >= 0 and (want < 0 or got == want) for got, want in zip(shape, self.shape)
        )
        if not fits:
            raise InvalidInputError(
                f"input {self.name!r} has shape {list(shape)}; the model expects {self.describe()} (-1 is any size)"
            )


def decode(spec: TensorSpec, shape: tuple[int, ...], raw: bytes | None, contents) -> np.ndarray:
    """Build the numpy array for one checked input from raw bytes or typed contents."""
    dtype = DATATYPES[spec.datatype]
    count = int(np.prod(shape, dtype=np.int64))
    if raw is not None:
        expected = count * dtype.itemsize
        if len(raw) != expected:
            raise InvalidInputError(
                f"input {spec.name!r} carries {len(raw)} bytes in raw_input_contents; shape "
                f"{list(shape)} of {spec.datatype} needs {expected}"
            )
        return np.frombuffer(raw, dtype=dtype).reshape(shape)
    field = _CONTENTS_FIELD.get(spec.datatype)
    values = getattr(contents, field) if field else ()
    if len(values) != count:
        where = f"contents.{field}" if field else "raw_input_contents (required for FP16)"
        raise InvalidInputError(
            f"input {spec.name!r} carries {len(values)} values in {where}; shape {list(shape)} needs {count}"
        )
    return np.asarray(values, dtype=dtype).reshape(shape)


def datatype_of(array: np.ndarray) -> str:
    return _BY_NUMPY[array.dtype]
