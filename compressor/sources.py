"""Source models: a submitted file (or an in-memory module) as an object the pipeline asks what it needs.

Accepted: ExportedProgram ``.pt2`` (torch.export.save), TorchScript ``.pt``, ONNX ``.onnx``, Keras ``.keras`` and,
through the Python API, an in-memory ``torch.nn.Module`` with example inputs.  Pickled PyTorch files
(``torch.save`` of a module or state dict) are refused without being unpickled.

Each format is one :class:`Source` subclass with the same methods: the reference runner (the original model in its
own framework), the PyTorch form (for litert-torch and the training-based techniques), the fp32 TFLite and ONNX
conversions, the MAC count and the input constraints.  Generic code never asks which format it holds.
"""

from __future__ import annotations

import hashlib
import inspect
import shutil
import zipfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from compressor.batching import batchable, describe_batch
from compressor.errors import InvalidInputError, TechniqueNotApplicableError, UnsupportedModelError
from compressor.registry import Registry
from compressor.runtimes import KerasRunner, OnnxRunner, Runner, TorchRunner
from compressor.tensors import TensorSpec

ACCEPTED = ".pt2 (torch.export.save), .pt (TorchScript: torch.jit.save), .onnx, .keras"
PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


class Source(ABC):
    """A loaded model plus what the pipeline needs to know about it."""

    format: ClassVar[str]  # pt2 | torchscript | onnx | keras | module
    layout: ClassVar[str] = "NCHW"
    has_torch_route: ClassVar[bool] = True  # False: to_torch always refuses (checked before a build starts)

    def __init__(self, inputs: tuple[TensorSpec, ...], params: int, handle: Any) -> None:
        self.inputs, self.params, self.handle = inputs, params, handle
        self.path: Path | None = None
        self.sha256: str | None = None
        self.size_bytes = 0

    # -- what every format answers -------------------------------------------------------------------------------
    @abstractmethod
    def reference_runner(self) -> Runner:
        """The original model in its own framework: the yardstick for every artifact."""

    @abstractmethod
    def to_torch(self):
        """An eager, exportable ``torch.nn.Module`` computing this model; raises
        :class:`TechniqueNotApplicableError` when the format has no route to PyTorch."""

    @abstractmethod
    def macs(self, sample_args: tuple) -> int | None:
        """Multiply-accumulates of one forward pass on the batch-of-one ``sample_args`` (None: unknown)."""

    def export_onnx(self, out: Path, sample_args: tuple, dynamic_batch: bool) -> None:
        """Write this model's plain fp32 ONNX graph to ``out`` (a dynamic batch axis when asked and possible)."""
        from compressor.torch_export import export_torch

        export_torch(self.to_torch(), sample_args, out, dynamic_batch)

    def convert_tflite(self, out: Path, sample_args: tuple, workdir: Path, op_allowlist: tuple[str, ...] = ()) -> None:
        """Write this model's plain fp32 TFLite conversion to ``out`` (batch of one, static shapes); ``op_allowlist``
        (the target's TFLite operators, empty: any) asks for the rewrites that keep missing operators out."""
        import litert_torch

        from compressor.graph_rewrites import rewritten_for_tflite

        litert_torch._config.config.show_progress = False  # noqa: SLF001 - keep the user's terminal for our bars
        module = rewritten_for_tflite(self.to_torch(), sample_args, op_allowlist)
        litert_torch.convert(module, sample_args).export(str(out))

    def route_refusal(self, fmt: str) -> str | None:
        """Why this model cannot reach artifact format ``fmt`` here (None: it can)."""
        return None

    def route(self, fmt: str) -> str:
        """The converters that take this model to artifact format ``fmt``, for the report."""
        return "litert-torch" if fmt == "tflite" else "torch.onnx.export (dynamo)"

    def teacher(self, sample_args: tuple):
        """The original model as a module that takes batches of any size: soft targets, counting, sensitivity."""
        return batchable(self.to_torch(), sample_args)

    def constraints(self) -> dict:
        """What the model itself accepts, for the report (e.g. ``{"batch": "fixed at 1"}``)."""
        return {"batch": describe_batch(self.inputs)}

    def describe(self) -> dict:
        return {
            "path": str(self.path) if self.path else None,
            "format": self.format,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "params": self.params,
            "inputs": [s.to_json() for s in self.inputs],
            "layout": self.layout,
            "constraints": self.constraints(),
        }

    def file(self) -> Path:
        """The submitted file (sources loaded from a file only)."""
        if self.path is None:
            raise ValueError(f"this {self.format} model was not loaded from a file")
        return self.path

    def use_samples(self, inputs: dict[str, np.ndarray]) -> None:  # noqa: B027 - optional hook, most need none
        """The user's samples, for sources whose conversion needs to see data (ONNX normalisation)."""

    def sample_args(self, batch: int = 1) -> tuple:
        """Zero tensors of this model's input shapes (batch ``batch``; dynamic dimensions need data instead)."""
        import torch

        return tuple(
            torch.zeros([int(d or 1) for d in s.with_batch(batch).shape], dtype=getattr(torch, s.dtype))
            for s in self.inputs
        )


class TorchSource(Source):
    """A source whose model is a ``torch.nn.Module`` already (an in-memory module, an ExportedProgram's)."""

    def reference_runner(self) -> Runner:
        return TorchRunner(self.handle, self.inputs)

    def to_torch(self):
        return self.handle

    def macs(self, sample_args: tuple) -> int | None:
        from compressor.analysis import torch_macs

        return torch_macs(self.to_torch(), sample_args)


class ModuleSource(TorchSource):
    """An in-memory module (the Python API), or a variant the pipeline made (pruned, distilled, a split head)."""

    format = "module"


class ExportedProgramSource(TorchSource):
    format = "pt2"


class TorchScriptSource(TorchSource):
    """A TorchScript archive; its exportable form comes from torch's TorchScript -> ExportedProgram converter."""

    format = "torchscript"

    def __init__(self, inputs: tuple[TensorSpec, ...], params: int, handle: Any) -> None:
        super().__init__(inputs, params, handle)
        self._exportable = None

    def to_torch(self):
        if self._exportable is None:
            from torch._export.converter import TS2EPConverter  # the only TorchScript -> ExportedProgram converter

            try:
                self._exportable = TS2EPConverter(self.handle, self.sample_args()).convert().module()
            except Exception as exc:  # noqa: BLE001
                raise TechniqueNotApplicableError(
                    f"this TorchScript model cannot be converted to an ExportedProgram ({type(exc).__name__}: "
                    f"{str(exc)[:200]}); submit torch.export.save(torch.export.export(model, args)) as .pt2 instead"
                ) from None
        return self._exportable

    def teacher(self, sample_args: tuple):
        return batchable(self.handle, sample_args)  # the script itself: its exported form is fixed to the sample


class OnnxSource(Source):
    """An ONNX graph: ONNX artifacts start from the file as submitted; PyTorch only for TFLite and training."""

    format = "onnx"

    NORMALISE_SAMPLES = 8  # samples that fix dynamic dimensions and check the normalised graph

    def __init__(self, inputs: tuple[TensorSpec, ...], params: int, handle: Any) -> None:
        super().__init__(inputs, params, handle)
        self._torch = None
        self._samples: dict[str, np.ndarray] | None = None

    def reference_runner(self) -> Runner:
        return OnnxRunner(self.file())

    def use_samples(self, inputs: dict[str, np.ndarray]) -> None:
        self._samples = {k: v[: self.NORMALISE_SAMPLES] for k, v in inputs.items()}

    def to_torch(self):
        """The graph, normalised and checked on the user's samples, in PyTorch through onnx2torch."""
        if self._torch is None:
            from compressor.onnx_torch import onnx_to_torch

            self._torch = onnx_to_torch(self.handle, self.path, self._samples)
        return self._torch

    def route(self, fmt: str) -> str:
        if fmt == "onnx":
            return "the submitted ONNX graph"
        return "ONNX graph normalised (onnxscript, checked in onnxruntime) -> onnx2torch -> litert-torch"

    def macs(self, sample_args: tuple) -> int | None:
        from compressor.analysis import onnx_macs

        return onnx_macs(self.handle, {s.name: tuple(a.shape) for s, a in zip(self.inputs, sample_args)})

    def export_onnx(self, out: Path, sample_args: tuple, dynamic_batch: bool) -> None:
        shutil.copyfile(self.file(), out)


class KerasSource(Source):
    """A Keras model: TFLite through TensorFlow's converter; no route to PyTorch or ONNX here."""

    format = "keras"
    layout = "NHWC"
    has_torch_route = False
    REFUSAL = (
        "Keras models have no PyTorch or ONNX form here, so {what} cannot apply; Keras models reach TFLite "
        "through TensorFlow's converter. For ONNX targets or PyTorch-based techniques export the model to ONNX "
        "first (e.g. with tf2onnx) and submit the .onnx file."
    )

    def reference_runner(self) -> Runner:
        return KerasRunner(self.handle, self.inputs)

    def to_torch(self):
        raise TechniqueNotApplicableError(
            self.REFUSAL.format(what="PyTorch-based steps (pruning, distillation, clustering, split)")
        )

    def teacher(self, sample_args: tuple):
        return self.to_torch()

    def macs(self, sample_args: tuple) -> int | None:
        from compressor.analysis import keras_macs

        return keras_macs(self.handle, [tuple(a.shape) for a in sample_args])

    def route_refusal(self, fmt: str) -> str | None:
        if fmt == "tflite":
            return None
        return (
            "Keras models reach TFLite only here; convert the model to ONNX first (e.g. with tf2onnx) and submit "
            "the .onnx file"
        )

    def route(self, fmt: str) -> str:
        return "Keras SavedModel export -> tf.lite.TFLiteConverter"

    def export_onnx(self, out: Path, sample_args: tuple, dynamic_batch: bool) -> None:
        raise TechniqueNotApplicableError(self.route_refusal("onnx"))

    def convert_tflite(self, out: Path, sample_args: tuple, workdir: Path, op_allowlist: tuple[str, ...] = ()) -> None:
        """Keras -> SavedModel (Keras' own export, batch of one) -> TFLite with TensorFlow's converter."""
        import tensorflow as tf

        saved = workdir / "keras-saved-model"
        specs = [tf.TensorSpec(s.with_batch(1).shape, tf.dtypes.as_dtype(s.dtype), name=s.name) for s in self.inputs]
        self.handle.export(str(saved), format="tf_saved_model", input_signature=specs, verbose=False)
        out.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())


# -- loading ---------------------------------------------------------------------------------------------------------
loaders: Registry = Registry("model loader")


def load_model(path: str | Path, data_hint: dict[str, np.ndarray] | None = None) -> Source:
    """Load a model file by its suffix; raise :class:`UnsupportedModelError` naming the file and accepted formats."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"model file {path} does not exist; accepted formats: {ACCEPTED}")
    suffix = path.suffix.lower()
    _refuse_pickles(path)
    if suffix not in loaders:
        raise UnsupportedModelError(
            f"model file {path} has unsupported suffix {suffix!r}; accepted formats: {ACCEPTED}"
        )
    loaded: Source = loaders.get(suffix)(path, data_hint)
    loaded.path = path
    loaded.size_bytes = path.stat().st_size
    loaded.sha256 = sha256_file(path)
    return loaded


def from_module(module, example_inputs: tuple, input_names: tuple[str, ...] | None = None) -> ModuleSource:
    """Wrap an in-memory ``torch.nn.Module`` (Python API); the first axis of each example input is the batch."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise InvalidInputError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(example_inputs, tuple) or not all(isinstance(t, torch.Tensor) for t in example_inputs):
        raise InvalidInputError("example_inputs must be a tuple of torch.Tensor, one per forward() argument")
    names = input_names or tuple(list(inspect.signature(module.forward).parameters)[: len(example_inputs)])
    specs = tuple(
        TensorSpec(name, (None, *t.shape[1:]), str(t.numpy().dtype)) for name, t in zip(names, example_inputs)
    )
    module = module.eval()
    source = ModuleSource(specs, _torch_param_count(module), module)
    source.size_bytes = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    return source


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _refuse_pickles(path: Path) -> None:
    with open(path, "rb") as handle:
        head = handle.read(4)
    refusal = (
        f"model file {path} is a pickled PyTorch object (torch.save of a module or state dict). Loading it would "
        "run arbitrary code, so EdgeForge never unpickles it. Submit an ExportedProgram instead: "
        "torch.export.save(torch.export.export(model.eval(), example_args), 'model.pt2'), or TorchScript "
        "(torch.jit.save), ONNX or Keras."
    )
    if head[:2] in PICKLE_MAGIC:
        raise UnsupportedModelError(refusal)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        is_pickle_zip = any(n.endswith("/data.pkl") for n in names)
        is_torchscript = any("/code/" in n for n in names) or any(n.endswith("constants.pkl") for n in names)
        is_exported = any("serialized_exported_program" in n or n.endswith("archive_format") for n in names)
        if is_pickle_zip and not is_torchscript and not is_exported:
            raise UnsupportedModelError(refusal)


def _torch_param_count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@loaders.register(".pt2")
def _load_exported_program(path: Path, _hint) -> Source:
    from compressor import safe_pt2

    program = safe_pt2.load(path)  # never torch.export.load: it unpickles and evaluates parts of the archive
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    specs = []
    for name in program.graph_signature.user_inputs:
        value = placeholders[name].meta.get("val")
        shape = tuple(int(d) if isinstance(d, int) else None for d in value.shape)
        specs.append(TensorSpec(name, shape, str(value.dtype).removeprefix("torch.")))
    module = program.module()
    return ExportedProgramSource(tuple(specs), _torch_param_count(module), module)


@loaders.register(".pt", ".pth")
def _load_torchscript(path: Path, hint: dict[str, np.ndarray] | None) -> Source:
    import torch

    try:
        script = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001
        raise UnsupportedModelError(
            f"model file {path} is not a readable TorchScript archive ({type(exc).__name__}: {str(exc)[:200]}); "
            f"accepted formats: {ACCEPTED}"
        ) from None
    names = [a.name for a in script.forward.schema.arguments[1:]]
    if not hint:
        raise InvalidInputError(
            f"TorchScript file {path} records no input shapes; pass sample data (--data D.npz with arrays "
            f"{', '.join(repr(n) for n in names)}) so EdgeForge can trace it, or submit an ExportedProgram (.pt2)"
        )
    found = [hint["x"]] if len(names) == 1 and set(hint) - {"labels"} == {"x"} else [hint.get(n) for n in names]
    arrays = [a for a in found if a is not None]
    if len(arrays) != len(names):
        raise InvalidInputError(f"TorchScript file {path} takes inputs {names}; the data has {sorted(hint)}")
    specs = tuple(TensorSpec(n, (None, *a.shape[1:]), _float32(a).dtype.name) for n, a in zip(names, arrays))
    script.eval()
    return TorchScriptSource(specs, _torch_param_count(script), script)


def _float32(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32) if array.dtype == np.float64 else array


@loaders.register(".onnx")
def _load_onnx(path: Path, _hint) -> Source:
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001
        raise UnsupportedModelError(
            f"model file {path} is not a valid ONNX model ({type(exc).__name__}: {str(exc)[:200]}); "
            f"accepted formats: {ACCEPTED}"
        ) from None
    initializers = {i.name for i in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name
        specs.append(TensorSpec(value.name, shape, dtype))
    params = sum(int(np.prod(i.dims)) for i in model.graph.initializer)
    return OnnxSource(tuple(specs), params, model)


@loaders.register(".keras")
def _load_keras(path: Path, _hint) -> Source:
    import keras

    try:
        model = keras.models.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001
        raise UnsupportedModelError(
            f"model file {path} is not a loadable Keras model ({type(exc).__name__}: {str(exc)[:200]}); "
            f"save it with model.save('model.keras'). Accepted formats: {ACCEPTED}"
        ) from None
    specs = tuple(
        TensorSpec(t.name, tuple(d if isinstance(d, int) else None for d in t.shape), np.dtype(t.dtype).name)
        for t in model.inputs
    )
    return KerasSource(specs, int(model.count_params()), model)


__all__ = [
    "ACCEPTED",
    "ExportedProgramSource",
    "KerasSource",
    "ModuleSource",
    "OnnxSource",
    "Source",
    "TorchScriptSource",
    "TorchSource",
    "from_module",
    "load_model",
    "loaders",
    "sha256_file",
]
