"""Export a build's served models as a Triton model repository (also what KServe's Triton runtime loads).

``export_repository(build_dir, repo)`` writes, for the manifest's cloud model and (for split builds) its tail::

    REPO/<model_name>/config.pbtxt         backend, max_batch_size, inputs/outputs, instance_group, dynamic_batching
    REPO/<model_name>/<version>/model.onnx the build's file, checked against the manifest's sha256

Model names and versions are the manifest's, so the SDKs' OIP v2 calls (``ModelInfer`` with the manifest's
``model_name``/``model_version``) reach Triton unchanged.  The default backend is Triton's ``onnxruntime``; the
``python`` backend writes ``model.py`` (onnxruntime run by Triton's Python backend) for Triton builds that ship
no ONNX Runtime backend, such as the server bundled in the ``nvidia-pytriton`` wheel.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from compressor.bundle.manifest import MANIFEST_FILE, load_manifest
from compressor.errors import InvalidInputError

BACKENDS = ("onnxruntime", "python")
INSTANCE_KINDS = {"auto": "KIND_AUTO", "cpu": "KIND_CPU", "gpu": "KIND_GPU"}
PYTHON_MODEL = Path(__file__).with_name("triton_python_model.py")  # copied as <version>/model.py


@dataclass(frozen=True)
class TritonOptions:
    """How the exported models are scheduled; rejects nonsense at construction.

    ``max_batch_size`` 0 serves the manifest's shapes as they are (no batch axis); above 0 the first axis of every
    input and output must be dynamic in the manifest and becomes Triton's batch axis.  ``dynamic_batching`` needs
    ``max_batch_size`` above 0.
    """

    backend: str = "onnxruntime"
    max_batch_size: int = 8
    instances: int = 1
    instance_kind: str = "cpu"
    dynamic_batching: bool = False
    max_queue_delay_us: int = 0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InvalidInputError(f"Triton backend {self.backend!r} is not supported; choose one of {BACKENDS}")
        if self.instance_kind not in INSTANCE_KINDS:
            raise InvalidInputError(
                f"instance kind {self.instance_kind!r} is not supported; choose one of {tuple(INSTANCE_KINDS)}"
            )
        if self.max_batch_size < 0 or self.instances < 1 or self.max_queue_delay_us < 0:
            raise InvalidInputError(
                f"max_batch_size must be >= 0, instances >= 1 and max_queue_delay_us >= 0; got "
                f"{self.max_batch_size}, {self.instances} and {self.max_queue_delay_us}"
            )
        if self.dynamic_batching and self.max_batch_size == 0:
            raise InvalidInputError("dynamic batching needs a batch axis: give max_batch_size > 0")
        if self.max_queue_delay_us and not self.dynamic_batching:
            raise InvalidInputError("max_queue_delay_us applies to dynamic batching only: turn dynamic batching on")


@dataclass(frozen=True)
class ExportedModel:
    """One model written into the repository: its name, version and folder."""

    name: str
    version: str
    folder: Path


def served_models(manifest: dict) -> list[dict]:
    """The manifest sections that a server serves: ``cloud`` and, for split builds, ``split.tail``."""
    sections = [manifest["cloud"]]
    if manifest.get("split"):
        sections.append(manifest["split"]["tail"])
    return sections


def export_repository(
    build_dir: str | Path, repo: str | Path, options: TritonOptions | None = None, *, replace: bool = False
) -> list[ExportedModel]:
    """Write the build's cloud model (and split tail) into Triton model repository ``repo``.

    Each ``<model>/`` folder appears whole or not at all.  An existing ``<model>/`` is replaced only with
    ``replace``.  Raises :class:`InvalidInputError` for a missing or invalid manifest, a model file whose sha256
    differs from the manifest's, a version Triton cannot use (not a positive integer) or shapes without the
    dynamic first axis that ``max_batch_size`` > 0 needs.
    """
    options = options or TritonOptions()
    build_dir = Path(build_dir)
    manifest = load_manifest(build_dir / MANIFEST_FILE)
    repo = Path(repo)
    plans = [(section, config_pbtxt(section, options)) for section in served_models(manifest)]
    for section, _ in plans:  # check everything before writing anything
        _check_file(build_dir, section)
        if (repo / section["model_name"]).exists() and not replace:
            raise InvalidInputError(
                f"{repo / section['model_name']} exists already; pass --force to replace it or choose another --out"
            )
    repo.mkdir(parents=True, exist_ok=True)
    return [_write_model(repo, build_dir, section, text, options) for section, text in plans]


def triton_version(section: dict) -> str:
    """The Triton version folder for a manifest model section ("1" when the manifest leaves it empty)."""
    version = section["model_version"] or "1"
    if not version.isdigit() or int(version) < 1:
        raise InvalidInputError(
            f"model {section['model_name']!r} has version {version!r}; Triton versions are positive integers "
            "(folder names): rebuild with a numeric model version"
        )
    return str(int(version))


def config_pbtxt(section: dict, options: TritonOptions) -> str:
    """The ``config.pbtxt`` text (Triton's ModelConfig in protobuf text format) for one manifest model section."""
    batched = options.max_batch_size > 0
    if batched:
        fixed = [t["name"] for t in (*section["inputs"], *section["outputs"]) if t["shape"][0] is not None]
        if fixed:
            raise InvalidInputError(
                f"model {section['model_name']!r}: tensor(s) {', '.join(fixed)} have a fixed first dimension, so "
                "Triton cannot batch them; export with max_batch_size 0 (--max-batch-size 0)"
            )
    lines = [
        f'name: "{section["model_name"]}"',
        f'backend: "{options.backend}"',
        f"max_batch_size: {options.max_batch_size}",
        f"version_policy: {{ specific: {{ versions: [ {triton_version(section)} ] }} }}",
    ]
    for kind, tensors in (("input", section["inputs"]), ("output", section["outputs"])):
        lines.append(f"{kind} [")
        lines.append(",\n".join(_tensor(t, batched) for t in tensors))
        lines.append("]")
    kind = INSTANCE_KINDS[options.instance_kind]
    lines.append(f"instance_group [ {{ count: {options.instances} kind: {kind} }} ]")
    if options.dynamic_batching:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {options.max_queue_delay_us} }}")
    return "\n".join(lines) + "\n"


def _tensor(tensor: dict, batched: bool) -> str:
    dims = [-1 if d is None else int(d) for d in tensor["shape"][1 if batched else 0 :]]
    if not dims:  # a batched tensor of shape [batch]: Triton writes the rest as [1] and reshapes it away
        dims_text = "dims: [ 1 ] reshape: { shape: [ ] }"
    else:
        dims_text = f"dims: [ {', '.join(map(str, dims))} ]"
    return f'  {{ name: "{tensor["name"]}" data_type: TYPE_{tensor["datatype"]} {dims_text} }}'


def _check_file(build_dir: Path, section: dict) -> None:
    path = build_dir / section["file"]
    if not path.is_file():
        raise InvalidInputError(f"{path} (model {section['model_name']!r} in the manifest) does not exist")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != section["sha256"]:
        raise InvalidInputError(
            f"{path} has sha256 {digest}, the manifest says {section['sha256']}: the build was changed after "
            "`sdkgen build` wrote it; rebuild it"
        )


def _write_model(repo: Path, build_dir: Path, section: dict, text: str, options: TritonOptions) -> ExportedModel:
    """Stage ``<model>/`` beside its final place, then move it in with one rename."""
    name, version = section["model_name"], triton_version(section)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=repo))
    try:
        (staging / "config.pbtxt").write_text(text)
        (staging / version).mkdir()
        shutil.copyfile(build_dir / section["file"], staging / version / "model.onnx")
        if options.backend == "python":
            shutil.copyfile(PYTHON_MODEL, staging / version / "model.py")
        final = repo / name
        if final.exists():
            retired = repo / f".{name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(final, retired)
            os.rename(staging, final)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportedModel(name, version, repo / name)
