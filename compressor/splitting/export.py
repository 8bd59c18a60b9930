"""Write one cut's artifacts: the head in the profile's format and precision, the tail as ONNX, the transfer quantization.

The head is converted by the same converters as whole models (a sub-build whose source is the head module);
the tail takes the int8 intermediate and dequantizes it itself, so the wire carries one byte per element.  The
composed path head -> int8 -> tail runs in the real runtimes on the user's data and faces the accuracy gate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compressor.data import SampleData
from compressor.errors import ConversionError, EdgeForgeError
from compressor.loaders import from_module
from compressor.metrics import compare, passes_gate
from compressor.native_output import captured
from compressor.passes import convert_onnx_pass, convert_tflite_pass
from compressor.profiles import Format, Precision
from compressor.runtimes import OnnxRunner, open_artifact, quantize
from compressor.splitting.graph import Cut, input_names, split_modules
from compressor.state import BuildState

INT8 = np.iinfo(np.int8)


@dataclass(frozen=True)
class TransferQuantization:
    """Asymmetric int8 for the intermediate tensor: ``q = clip(round(x / scale) + zero_point)``."""

    scale: float
    zero_point: int

    @classmethod
    def calibrate(cls, values: np.ndarray) -> TransferQuantization:
        low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
        scale = max(high - low, 1e-8) / (INT8.max - INT8.min)
        zero_point = int(np.clip(round(INT8.min - low / scale), INT8.min, INT8.max))
        return cls(scale, zero_point)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        return quantize(x, self.scale, self.zero_point, np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return ((q.astype(np.float32) - self.zero_point) * self.scale).astype(np.float32)


@dataclass(frozen=True)
class SplitArtifacts:
    cut: Cut
    head_path: Path
    head_format: Format
    head_precision: Precision
    tail_path: Path
    transfer: TransferQuantization
    metrics: dict
    passed_gate: bool


def export_split(state: BuildState, gm, cut: Cut, fmt: Format, precision: Precision, out_dir: Path) -> SplitArtifacts:
    """Convert the head and tail of ``cut`` into ``out_dir`` and gate the composed path on ``state.data``."""
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    head, tail = split_modules(gm, cut)
    names = input_names(gm)
    data_keys = list(state.data.inputs)
    head_data = SampleData(
        {data_keys[names.index(n)]: state.data.inputs[data_keys[names.index(n)]] for n in cut.head_inputs}
    )
    side = {n: state.data.inputs[data_keys[names.index(n)]] for n in cut.side_inputs}
    calib = head_data.take(0, min(len(head_data), state.options.calibration_samples))
    with torch.no_grad():  # one sample at a time: the graph was traced with a batch of one
        mid = np.concatenate(
            [head(*(torch_tensor(v[i : i + 1]) for v in calib.inputs.values())).numpy() for i in range(len(calib))]
        )
    transfer = TransferQuantization.calibrate(mid)
    head_path = _convert_head(state, head, head_data, fmt, precision, out_dir)
    tail_path = out_dir / "tail.onnx"
    tail_args = (torch.from_numpy(transfer.quantize(mid[:1])), *(torch.from_numpy(v[:1]) for v in side.values()))
    _export(lambda: convert_onnx_pass.export_torch(_DequantizedTail(tail, transfer), tail_args, tail_path, True), state)
    outputs = _composed(head_path, fmt, tail_path, transfer, head_data, side)
    if state.reference_outputs is None:
        state.reference_outputs = state.source.reference_runner().run(state.data.inputs)
    metrics = compare(state.reference_outputs, outputs, state.data.labels)
    passed = passes_gate(metrics, state.options.max_accuracy_drop, state.options.min_cosine)
    return SplitArtifacts(cut, head_path, fmt, precision, tail_path, transfer, metrics, passed)


def _convert_head(
    state: BuildState, head, head_data: SampleData, fmt: Format, precision: Precision, out_dir: Path
) -> Path:
    args = tuple(torch_tensor(v[:1]) for v in head_data.inputs.values())
    workdir = out_dir / "head-work"
    workdir.mkdir(exist_ok=True)
    sub = dataclasses.replace(
        state, source=from_module(head, args, tuple(head_data.inputs)), data=head_data, workdir=workdir
    )
    base, path = workdir / f"fp32-base.{fmt.value}", out_dir / f"head.{fmt.value}"
    if fmt is Format.TFLITE:
        _export(lambda: convert_tflite_pass.convert_fp32(sub, base), state)
        _export(lambda: convert_tflite_pass.quantize(base, path, precision, sub), state)
    else:
        _export(
            lambda: convert_onnx_pass.export_fp32(sub, base, dynamic_batch=not state.profile.accepts.static_shapes),
            state,
        )
        _export(lambda: convert_onnx_pass.quantize(base, path, precision, sub), state)
    return path


def torch_tensor(array: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


def _export(step, state: BuildState) -> None:
    try:
        with captured(state.workdir / "converter.log"):
            step()
    except EdgeForgeError:
        raise
    except Exception as exc:
        raise ConversionError(
            f"converting the split head/tail failed ({type(exc).__name__}: {str(exc)[:400]}); see converter.log"
        ) from exc


def _composed(
    head_path: Path,
    fmt: Format,
    tail_path: Path,
    transfer: TransferQuantization,
    head_data: SampleData,
    side: dict[str, np.ndarray],
) -> list[np.ndarray]:
    """Outputs of head (its runtime) -> int8 -> tail (onnxruntime), one sample at a time as the SDKs run it."""
    head_runner, tail_runner = open_artifact(head_path, fmt.value), OnnxRunner(tail_path)
    rows = []
    for i in range(len(head_data)):
        [mid] = head_runner.run({k: v[i : i + 1] for k, v in head_data.inputs.items()})
        feeds = {"intermediate": transfer.quantize(mid), **{k: v[i : i + 1] for k, v in side.items()}}
        rows.append(tail_runner.run(feeds))
    return [np.concatenate([r[j] for r in rows]) for j in range(len(rows[0]))]


def _dequantized_tail_class():
    import torch

    class DequantizedTail(torch.nn.Module):
        """The tail behind the transfer dequantization: takes the int8 intermediate (and side inputs)."""

        def __init__(self, tail, transfer: TransferQuantization) -> None:
            super().__init__()
            self.tail = tail
            self.scale, self.zero_point = transfer.scale, transfer.zero_point

        def forward(self, intermediate, *side):
            return self.tail((intermediate.to(torch.float32) - self.zero_point) * self.scale, *side)

    return DequantizedTail


def _DequantizedTail(tail, transfer: TransferQuantization):
    return _dequantized_tail_class()(tail, transfer)
