"""Loaders turn a submitted model into a :class:`SourceModel` the pipeline can work on.

Accepted: ExportedProgram ``.pt2`` (torch.export.save), TorchScript ``.pt``,
ONNX ``.onnx``, Keras ``.keras`` and, through the Python API, an in-memory
``torch.nn.Module`` with example inputs.  Pickled PyTorch files (``torch.save``
of a module or state dict) are recognised by their layout and refused without
being unpickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import sys
import types
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressor.errors import InvalidInputError, TechniqueNotApplicableError, UnsupportedModelError
from compressor.registry import Registry
from compressor.runtimes import KerasRunner, OnnxRunner, Runner, TorchRunner
from compressor.tensors import TensorSpec

ACCEPTED = ".pt2 (torch.export.save), .pt (TorchScript: torch.jit.save), .onnx, .keras"
PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")

loaders: Registry = Registry("model loader")


@dataclass
class SourceModel:
    """A loaded model plus what the pipeline needs to know about it."""

    format: str  # pt2 | torchscript | onnx | keras | module
    family: str  # torch | onnx | keras
    inputs: tuple[TensorSpec, ...]
    params: int
    size_bytes: int
    path: Path | None = None
    sha256: str | None = None
    layout: str = "NCHW"
    handle: Any = None  # torch.nn.Module, onnx.ModelProto or keras.Model
    _torch: Any = field(default=None, repr=False)

    def reference_runner(self) -> Runner:
        """The original model in its own framework: the yardstick for every artifact."""
        if self.family == "torch":
            return TorchRunner(self.handle, self.inputs)
        if self.family == "onnx":
            return OnnxRunner(self.path)
        return KerasRunner(self.handle, self.inputs)

    def torch_module(self):
        """An eager, exportable ``torch.nn.Module`` for this model (ONNX goes through onnx2torch)."""
        if self._torch is None:
            if self.format == "torchscript":
                self._torch = _torchscript_to_module(self.handle, self.sample_args())
            elif self.family == "torch":
                self._torch = self.handle
            elif self.family == "onnx":
                self._torch = onnx_to_torch(self.handle, self.path)
            else:
                raise TechniqueNotApplicableError(
                    f"{self.format} models have no PyTorch form, so PyTorch-based steps (TFLite via litert-torch, "
                    "ONNX export, pruning, distillation) cannot apply; Keras models reach TFLite through "
                    "TensorFlow's converter. For ONNX targets export the model to ONNX first (e.g. with tf2onnx) "
                    "and submit the .onnx file."
                )
        return self._torch

    def teacher(self):
        """The original model as a module that takes batches of any size, for soft targets and counting: a
        TorchScript module itself (its ExportedProgram form is fixed to the sample's batch), else
        :meth:`torch_module`."""
        return self.handle if self.format == "torchscript" else self.torch_module()

    def sample_args(self, batch: int = 1) -> tuple:
        """Zero tensors of this model's input shapes (batch ``batch``) for tracing and export."""
        import torch

        return tuple(torch.zeros(s.with_batch(batch).shape, dtype=getattr(torch, s.dtype)) for s in self.inputs)

    def describe(self) -> dict:
        return {
            "path": str(self.path) if self.path else None,
            "format": self.format,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "params": self.params,
            "inputs": [s.to_json() for s in self.inputs],
            "layout": self.layout,
        }


def load_model(path: str | Path, data_hint: dict[str, np.ndarray] | None = None) -> SourceModel:
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
    loaded: SourceModel = loaders.get(suffix)(path, data_hint)
    loaded.path = path
    loaded.size_bytes = path.stat().st_size
    loaded.sha256 = sha256_file(path)
    return loaded


def from_module(module, example_inputs: tuple, input_names: tuple[str, ...] | None = None) -> SourceModel:
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
    params = sum(p.numel() for p in module.parameters())
    size = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    return SourceModel("module", "torch", specs, params, size, handle=module)


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
def _load_exported_program(path: Path, _hint) -> SourceModel:
    from compressor import safe_pt2

    program = safe_pt2.load(path)  # never torch.export.load: it unpickles and evaluates parts of the archive
    user_inputs = list(program.graph_signature.user_inputs)
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    specs = []
    for name in user_inputs:
        value = placeholders[name].meta.get("val")
        shape = tuple(int(d) if isinstance(d, int) else None for d in value.shape)
        specs.append(TensorSpec(name, shape, str(value.dtype).removeprefix("torch.")))
    module = program.module()
    return SourceModel("pt2", "torch", tuple(specs), _torch_param_count(module), 0, handle=module)


@loaders.register(".pt", ".pth")
def _load_torchscript(path: Path, hint: dict[str, np.ndarray] | None) -> SourceModel:
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
    arrays = [hint["x"]] if len(names) == 1 and set(hint) - {"labels"} == {"x"} else [hint.get(n) for n in names]
    if any(a is None for a in arrays) or len(arrays) != len(names):
        raise InvalidInputError(f"TorchScript file {path} takes inputs {names}; the data has {sorted(hint)}")
    specs = tuple(TensorSpec(n, (None, *a.shape[1:]), _float32(a).dtype.name) for n, a in zip(names, arrays))
    script.eval()
    return SourceModel("torchscript", "torch", specs, _torch_param_count(script), 0, handle=script)


def _float32(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32) if array.dtype == np.float64 else array


def _torchscript_to_module(script, sample_args: tuple):
    """TorchScript -> ExportedProgram -> exportable module, with torch's TorchScript converter."""
    from torch._export.converter import TS2EPConverter  # the only TorchScript -> ExportedProgram converter

    try:
        return TS2EPConverter(script, sample_args).convert().module()
    except Exception as exc:  # noqa: BLE001
        raise TechniqueNotApplicableError(
            f"this TorchScript model cannot be converted to an ExportedProgram ({type(exc).__name__}: "
            f"{str(exc)[:200]}); submit torch.export.save(torch.export.export(model, args)) as .pt2 instead"
        ) from None


@loaders.register(".onnx")
def _load_onnx(path: Path, _hint) -> SourceModel:
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
        specs.append(
            TensorSpec(value.name, shape, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name)
        )
    params = sum(int(np.prod(i.dims)) for i in model.graph.initializer)
    return SourceModel("onnx", "onnx", tuple(specs), params, 0, handle=model)


@loaders.register(".keras")
def _load_keras(path: Path, _hint) -> SourceModel:
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
    return SourceModel("keras", "keras", specs, int(model.count_params()), 0, layout="NHWC", handle=model)


ONNX2TORCH_OPSET = 17


def onnx_to_torch(model, path: Path | None):
    """Turn an ONNX graph into an eager ``torch.nn.Module`` with onnx2torch."""
    from onnx import version_converter

    with _torchvision_stand_in():
        from onnx2torch import convert

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), ONNX2TORCH_OPSET)
    if opset > ONNX2TORCH_OPSET:
        model = version_converter.convert_version(model, ONNX2TORCH_OPSET)
    _relax_reshape_allowzero(model)
    try:
        return convert(model).eval()
    except NotImplementedError as exc:
        raise TechniqueNotApplicableError(
            f"ONNX model {path or ''} uses an operator onnx2torch cannot turn into PyTorch ({exc}); it can still "
            "target ONNX profiles. For TFLite profiles or training-based techniques submit the PyTorch model "
            "as an ExportedProgram (.pt2)."
        ) from None


def _relax_reshape_allowzero(model) -> None:
    """Clear ``allowzero=1`` on Reshape nodes whose constant target shape has no zero (it changes nothing there)."""
    from onnx import numpy_helper

    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    for node in model.graph.node:
        if node.op_type != "Reshape":
            continue
        target = constants.get(node.input[1])
        for attribute in node.attribute:
            if attribute.name == "allowzero" and attribute.i == 1 and target is not None and 0 not in target:
                attribute.i = 0


@contextlib.contextmanager
def _torchvision_stand_in():
    """onnx2torch imports torchvision (at import time) for two detection ops only; where it is not installed,
    stand in for it while onnx2torch is imported, then forget the stand-in, which torch.onnx's exporter would
    otherwise take for the real package."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        pass
    else:
        yield
        return

    def missing(*_args, **_kwargs):
        raise TechniqueNotApplicableError(
            "this ONNX model uses NonMaxSuppression or RoiAlign, which need torchvision to run in PyTorch; "
            "it can still target ONNX profiles"
        )

    ops = types.ModuleType("torchvision.ops")
    ops.batched_nms = ops.nms = ops.roi_align = missing
    package = types.ModuleType("torchvision")
    package.ops = ops
    sys.modules.update({"torchvision": package, "torchvision.ops": ops})
    try:
        yield
    finally:
        for name, stand_in in (("torchvision", package), ("torchvision.ops", ops)):
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
