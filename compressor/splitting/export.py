"""Write one cut's artifacts: the head in the profile's format and precision, the tail as ONNX, the transfer
quantization.

The head is converted by the same converters as whole models (its source is the head module);
the tail takes the int8 intermediate and dequantizes it itself, so the wire carries one byte per element.  The
composed path head -> int8 -> tail runs in the real runtimes on the user's data and faces the accuracy gate.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compressor.converters import ConvertInput, convert, failure_reason
from compressor.data import SampleData
from compressor.errors import ConversionError
from compressor.metrics import Gate, compare
from compressor.native_output import captured
from compressor.profiles import Format, Precision
from compressor.runtimes import OnnxRunner, open_artifact, quantize
from compressor.sources import from_module
from compressor.splitting.graph import Cut, input_names, split_modules
from compressor.torch_export import export_torch

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
        return quantize(x, self.scale, self.zero_point, np.dtype(np.int8))

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


@dataclass(frozen=True)
class SplitInput:
    """What exporting one cut needs: the graph and the cut, the head's format and precision, the validation data
    and the original model's outputs on it (to gate the composed path), how many samples calibrate, and where
    the files go (``out_dir``; converter output to ``log``)."""

    gm: object  # torch.fx.GraphModule from graph.export_graph
    cut: Cut
    format: Format
    precision: Precision
    data: SampleData
    reference: list[np.ndarray]
    gate: Gate
    calibration_samples: int
    dynamic_batch: bool
    out_dir: Path
    log: Path
    onnx_weight_bits: int = 8  # an ONNX head's int8 weights: 7 on x86 CPUs without VNNI (the profile's key)


def export_split(inp: SplitInput) -> SplitArtifacts:
    """Convert the head and tail of ``inp.cut`` into ``inp.out_dir`` and gate the composed path on ``inp.data``."""
    import torch

    inp.out_dir.mkdir(parents=True, exist_ok=True)
    head, tail = split_modules(inp.gm, inp.cut)
    names = input_names(inp.gm)
    data_keys = list(inp.data.inputs)
    head_data = SampleData(
        {data_keys[names.index(n)]: inp.data.inputs[data_keys[names.index(n)]] for n in inp.cut.head_inputs}
    )
    side = {n: inp.data.inputs[data_keys[names.index(n)]] for n in inp.cut.side_inputs}
    calib = head_data.take(0, min(len(head_data), inp.calibration_samples))
    with torch.no_grad():  # one sample at a time: the graph was traced with a batch of one
        mid = np.concatenate(
            [head(*(torch_tensor(v[i : i + 1]) for v in calib.inputs.values())).numpy() for i in range(len(calib))]
        )
    transfer = TransferQuantization.calibrate(mid)
    head_path = _convert_head(inp, head, calib)
    tail_path = inp.out_dir / "tail.onnx"
    tail_args = (torch.from_numpy(transfer.quantize(mid[:1])), *(torch.from_numpy(v[:1]) for v in side.values()))
    try:
        with captured(inp.log):
            export_torch(_DequantizedTail(tail, transfer), tail_args, tail_path, True)
    except Exception as exc:
        raise ConversionError(failure_reason("split tail export", exc)) from exc
    outputs = _composed(head_path, inp.format, tail_path, transfer, head_data, side)
    metrics = compare(inp.reference, outputs, inp.data.labels)
    return SplitArtifacts(
        inp.cut, head_path, inp.format, inp.precision, tail_path, transfer, metrics, inp.gate.passes(metrics)
    )


def _convert_head(inp: SplitInput, head, calibration: SampleData) -> Path:
    """The head in the build's format and precision, through the same converter as whole models."""
    args = tuple(torch_tensor(v[:1]) for v in calibration.inputs.values())
    source = from_module(head, args, tuple(calibration.inputs))
    job = ConvertInput(
        source,
        args,
        calibration,
        inp.out_dir / "head-work",
        (inp.precision,),
        dynamic_batch=inp.dynamic_batch,
        log=inp.log,
        onnx_weight_bits=inp.onnx_weight_bits,
    )
    [artifact] = convert(inp.format, job).artifacts
    if artifact.path is None:
        raise ConversionError(f"converting the split head failed: {artifact.error}")
    path = inp.out_dir / f"head.{inp.format.value}"
    shutil.copyfile(artifact.path, path)
    return path


def torch_tensor(array: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


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


def _DequantizedTail(tail, transfer: TransferQuantization):  # noqa: N802 - reads as the class it builds
    return _dequantized_tail_class()(tail, transfer)
