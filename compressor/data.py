"""Sample data: ``.npz`` archives read without pickle and matched to a model's inputs."""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compressor.errors import DataMismatchError, InvalidInputError
from compressor.tensors import TensorSpec, is_whole

LABELS_KEY = "labels"
SINGLE_INPUT_KEY = "x"


@dataclass(frozen=True)
class SampleData:
    """Model inputs by name (each with a leading sample axis) and optional integer labels."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    synthetic: bool = False  # seeded stand-ins made because the user gave no data

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def take(self, start: int, stop: int) -> SampleData:
        labels = None if self.labels is None else self.labels[start:stop]
        return SampleData({k: v[start:stop] for k, v in self.inputs.items()}, labels, self.synthetic)


# What a damaged zip can raise while being read (zipfile lets zlib's and its own errors through).
_UNREADABLE = (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError, KeyError)
MAX_DECOMPRESSED_BYTES = 4 << 30  # all arrays of one .npz together, checked before anything is decompressed
MAX_ARRAYS = 1024


def read_npz(path: str | Path, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file; object (pickled) arrays are refused, never loaded.

    Sizes are bounded before decompressing: the members' declared sizes, and each array's header (its
    shape and dtype, parsed without loading) must fit ``max_bytes`` (default :data:`MAX_DECOMPRESSED_BYTES`)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"data file {path} does not exist; pass an .npz written by numpy.savez")
    check_npz_sizes(path, MAX_DECOMPRESSED_BYTES if max_bytes is None else max_bytes)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InvalidInputError(
                f"data file {path} holds object arrays, which can only be read by unpickling; EdgeForge never "
                "unpickles user data. Save plain numeric arrays instead, e.g. np.savez(path, x=x.astype(np.float32), "
                "labels=y.astype(np.int64))"
            ) from None
        raise InvalidInputError(f"data file {path} is not a readable .npz archive: {exc}") from None
    except _UNREADABLE as exc:
        raise InvalidInputError(
            f"data file {path} is not a readable .npz archive ({exc}); write it with numpy.savez"
        ) from None


def check_npz_sizes(path: Path, max_bytes: int) -> None:
    """Refuse an ``.npz`` whose members or array headers announce more than ``max_bytes`` in all."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_ARRAYS:
                raise InvalidInputError(f"data file {path} holds {len(infos)} arrays; at most {MAX_ARRAYS} are read")
            declared = sum(i.file_size for i in infos)
            announced = 0
            for info in infos:
                with archive.open(info) as member:
                    announced += _npy_bytes(path, info.filename, member)
    except InvalidInputError:
        raise
    except (*_UNREADABLE, ValueError) as exc:
        raise InvalidInputError(
            f"data file {path} is not a readable .npz archive ({type(exc).__name__}: {exc}); write it with numpy.savez"
        ) from None
    largest = max(declared, announced)
    if largest > max_bytes:
        raise InvalidInputError(
            f"data file {path} decompresses to {largest} bytes; at most {max_bytes} are accepted. Send fewer "
            "samples (a few hundred are enough to calibrate and validate)"
        )


def _npy_bytes(path: Path, name: str, member) -> int:
    """The bytes an ``.npy`` member's header announces (shape x itemsize), read without loading the array."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(member)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _, dtype = read_header(member)  # parsed with ast.literal_eval: data, never code
    except ValueError as exc:
        raise InvalidInputError(f"data file {path}: member {name} is not a .npy array ({exc})") from None
    count = 1
    for dim in shape:
        count *= int(dim)
    return count * max(dtype.itemsize, 1)


def match_inputs(arrays: dict[str, np.ndarray], specs: tuple[TensorSpec, ...], source: str) -> SampleData:
    """Pair arrays with the model's input specs by name (``x`` for a single input) and check shapes and dtypes."""
    arrays = dict(arrays)
    labels = arrays.pop(LABELS_KEY, None)
    expected = ", ".join(s.describe() for s in specs)
    if len(specs) == 1 and set(arrays) == {SINGLE_INPUT_KEY}:
        arrays = {specs[0].name: arrays[SINGLE_INPUT_KEY]}
    names = {s.name for s in specs}
    if set(arrays) != names:
        hint = f" (or '{SINGLE_INPUT_KEY}' for a single-input model)" if len(specs) == 1 else ""
        raise DataMismatchError(
            f"{source} has arrays {sorted(arrays) or '(none)'} besides '{LABELS_KEY}'; the model takes inputs "
            f"{expected}. Name one array per model input{hint}, plus an optional '{LABELS_KEY}' array."
        )
    matched: dict[str, np.ndarray] = {}
    for spec in specs:
        matched[spec.name] = _match_one(arrays[spec.name], spec, source)
    counts = {len(a) for a in matched.values()}
    if len(counts) != 1 or 0 in counts:
        raise DataMismatchError(
            f"{source}: every input array needs the same number (> 0) of samples, got {sorted(counts)}"
        )
    if labels is not None:
        whole = [spec.name for spec in specs if is_whole(matched[spec.name], len(spec.shape))]
        if whole:  # whole-input samples give whole outputs per sample: no batch axis for labels to index
            raise DataMismatchError(
                f"{source}: '{LABELS_KEY}' needs samples on the inputs' batch axis, but {', '.join(whole)} holds "
                f"one whole input per sample (one more axis than the model's); drop '{LABELS_KEY}' (the outputs "
                "are then compared by cosine) or give those inputs with the batch axis first"
            )
        labels = _match_labels(labels, counts.pop(), source)
    return SampleData(matched, labels)


def _fits(have: tuple[int, ...], want: tuple[int | None, ...]) -> bool:
    """``have`` (an array's shape under its sample axis) matches ``want`` (``None``: any size)."""
    return len(have) == len(want) and all(w is None or h == w for h, w in zip(have, want))


def _match_one(array: np.ndarray, spec: TensorSpec, source: str) -> np.ndarray:
    got = f"array '{spec.name}' of shape {list(array.shape)} and dtype {array.dtype}"
    if not (_fits(array.shape[1:], spec.shape[1:]) or _fits(array.shape[1:], spec.shape)):
        raise DataMismatchError(
            f"{source}: {got} does not match model input {spec.describe()}; the first axis counts samples: "
            "either it is the input's own first axis (the others must equal the model's), or each sample is a "
            "whole input (one more axis than the model's: a state, a scalar as a 1-D array)"
        )
    want = np.dtype(spec.dtype)
    if array.dtype == want:
        return array
    if array.dtype.kind == want.kind:  # float64 -> float32 and the like: same kind, only the width differs
        return array.astype(want)
    raise DataMismatchError(f"{source}: {got} cannot be used for model input {spec.describe()}; save it as {want}")


def _match_labels(labels: np.ndarray, count: int, source: str) -> np.ndarray:
    if labels.ndim != 1 or len(labels) != count or not np.issubdtype(labels.dtype, np.integer):
        raise DataMismatchError(
            f"{source}: '{LABELS_KEY}' must be a 1-D integer array with one class index per sample "
            f"({count}); got shape {list(labels.shape)} and dtype {labels.dtype}"
        )
    return labels.astype(np.int64)
