"""Tensor descriptions shared by loaders, runtimes, reports and manifests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor; ``None`` in ``shape`` marks a dimension fixed only at run time."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"'{self.name}' [{dims}] {self.dtype}"

    def with_batch(self, batch: int) -> TensorSpec:
        return TensorSpec(self.name, (batch, *self.shape[1:]), self.dtype)

    @property
    def nbytes_per_sample(self) -> int:
        count = int(np.prod([d for d in self.shape[1:] if d is not None], dtype=np.int64))
        return count * np.dtype(self.dtype).itemsize

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


def is_whole(array: np.ndarray, rank: int) -> bool:
    """An array of one more dimension than the model input of ``rank`` holds one whole input per sample (an RNN
    state ``[2, 1, 128]`` under the sample axis, a scalar rate as a 1-D array); otherwise the sample axis is the
    input's own first (batch) axis."""
    return array.ndim == rank + 1


def one_sample(array: np.ndarray, index: int, rank: int) -> np.ndarray:
    """Sample ``index`` of ``array`` as the model input of ``rank`` takes it: ``array[i]`` when each sample is a
    whole input (:func:`is_whole`), ``array[i:i+1]`` when the sample axis is the input's batch axis."""
    return np.asarray(array[index]) if is_whole(array, rank) else array[index : index + 1]
