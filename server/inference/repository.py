"""The model repository: ONNX models served through onnxruntime, by name and version."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressor.errors import InvalidInputError, UnsupportedModelError
from server.errors import NotFoundError
from server.inference.tensors import TensorSpec


@dataclass
class ServedModel:
    """One loaded model version; ``run`` is thread-safe (onnxruntime sessions are)."""

    name: str
    version: str
    path: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    session: Any = field(repr=False)  # onnxruntime.InferenceSession

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        return self.session.run(outputs, feeds)

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise InvalidInputError(
            f"model {self.name!r} has no input {name!r}; its inputs: {', '.join(s.describe() for s in self.inputs)}"
        )

    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]


def _refuse_external_data(path: Path) -> None:
    """A served model must be one self-contained file: a job's output (untrusted) could otherwise point
    onnxruntime, which runs in the server process, at any file the server can read."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises its own untyped errors
        raise UnsupportedModelError(f"cannot serve {path.name}: not a readable ONNX model ({exc})") from None
    graphs, external = [model.graph], []
    while graphs:
        graph = graphs.pop()
        external += [t.name for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
        for node in graph.node:
            graphs += [a.g for a in node.attribute if a.HasField("g")] + list(
                n for a in node.attribute for n in a.graphs
            )
    if external:
        raise UnsupportedModelError(
            f"cannot serve {path.name}: tensors {external[:5]} are stored outside the file (external data); "
            "served models must be self-contained"
        )


def _session(path: Path, threads: int):
    import onnxruntime as ort

    _refuse_external_data(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise UnsupportedModelError(f"cannot serve {path}: onnxruntime refused it ({exc})") from exc


class ModelRepository:
    """Models by name, each with one or more versions; the last registered version is the default."""

    def __init__(self, intra_op_threads: int = 1) -> None:
        self._threads = intra_op_threads
        self._models: dict[tuple[str, str], dict[str, ServedModel]] = {}
        self._lock = threading.RLock()

    def register(self, name: str, version: str, onnx_path: str | Path, tenant: str = "default") -> ServedModel:
        """Load ``onnx_path`` and serve it to ``tenant`` as ``name`` version ``version`` (replacing that version)."""
        if not name or "/" in name:
            raise InvalidInputError(f"model name {name!r} is not servable: use a non-empty name without '/'")
        path = Path(onnx_path)
        session = _session(path, self._threads)
        model = ServedModel(
            name,
            str(version),
            path,
            tuple(TensorSpec.from_ort(a) for a in session.get_inputs()),
            tuple(TensorSpec.from_ort(a) for a in session.get_outputs()),
            session,
        )
        with self._lock:
            versions = self._models.setdefault((tenant, name), {})
            versions.pop(model.version, None)
            versions[model.version] = model
        return model

    def get(self, name: str, version: str = "", tenant: str = "default") -> ServedModel:
        """The model ``name`` at ``version`` (latest when empty); NotFoundError lists what ``tenant`` is served."""
        with self._lock:
            versions = self._models.get((tenant, name))
            if not versions:
                served = ", ".join(self.names(tenant)) or "(none yet: models appear when a job completes)"
                raise NotFoundError(f"no model named {name!r} is served; served models: {served}")
            if not version:
                return list(versions.values())[-1]
            if version not in versions:
                raise NotFoundError(
                    f"model {name!r} has no version {version!r}; served versions: {', '.join(versions)}"
                )
            return versions[version]

    def versions(self, name: str, tenant: str = "default") -> list[str]:
        with self._lock:
            return list(self._models.get((tenant, name), {}))

    def names(self, tenant: str = "default") -> list[str]:
        with self._lock:
            return sorted(name for owner, name in self._models if owner == tenant)
