"""The converter contract: a frozen input in, artifacts out (see :mod:`compressor.converters`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from compressor.data import SampleData
from compressor.errors import EdgeForgeError
from compressor.profiles import Format, Precision
from compressor.sources import Source

WeightGranularity = Literal["channel", "tensor"]


@dataclass(frozen=True)
class ConvertInput:
    """What one conversion needs.

    ``sample_args`` are batch-of-one torch tensors (tracing, export); ``calibration`` feeds full-integer
    quantization; ``workdir`` is the conversion's own folder (its log is ``workdir/converter.log`` unless ``log``
    says otherwise); ``weight_granularity`` ``tensor`` gives integer weights one scale per tensor (clustered
    variants); ``dynamic_batch`` asks for a dynamic batch axis where the format and the model allow one;
    ``calibration_method`` picks the activation ranges of full-integer quantization (``compressor.calibration``;
    ``moving-average`` for TFLite and ``minmax`` for ONNX are what the bare tools do, ``auto`` measures them on the
    calibration samples), ``bias_correction`` corrects int8 layers' biases for their weight error,
    ``gptq`` offers int8-dynamic TFLite weights rounded by GPTQ (:mod:`compressor.gptq`),
    ``float_activations`` lets int8-dynamic keep the layers that lose the most to run-time activation quantization
    on float activations (:func:`compressor.calibration.float_activation_layers`) and ``onnx_fp16`` says whether
    fp16 ONNX computes in fp16 or only stores its weights so (the profile's ``accepts.onnx_fp16``);
    ``onnx_weight_bits`` 7 gives int8 ONNX weights onnxruntime's reduced range (the profile's
    ``accepts.onnx_int8_weight_bits``, resolved for the build host where it says ``host``); ``op_allowlist`` is the
    profile's TFLite operator list (empty: any), for the rewrites that keep operators it lacks out of the flatbuffer.
    """

    source: Source
    sample_args: tuple
    calibration: SampleData
    workdir: Path
    precisions: tuple[Precision, ...]
    weight_granularity: WeightGranularity = "channel"
    dynamic_batch: bool = True
    log: Path | None = None
    calibration_method: str = "default"  # the converter's own default
    bias_correction: bool = False
    gptq: bool = False
    float_activations: bool = False
    onnx_fp16: str = "compute"  # the profile's accepts.onnx_fp16: what fp16 ONNX keeps in fp16
    onnx_weight_bits: int = 8  # 7: int8 ONNX weights in [-64, 64] (onnxruntime's reduce_range)
    op_allowlist: tuple[str, ...] = ()

    @property
    def onnx_reduce_range(self) -> bool:
        """7-bit int8 ONNX weights: onnxruntime's ``reduce_range``."""
        return self.onnx_weight_bits == 7

    @property
    def log_path(self) -> Path:
        return self.log or self.workdir / "converter.log"


@dataclass(frozen=True)
class Artifact:
    """One converted file, or why it could not be made (``path`` None, ``error`` set)."""

    format: Format
    precision: Precision
    path: Path | None
    error: str | None = None
    notes: dict | None = None  # how it was quantized (calibration method, bias correction), for the report


@dataclass(frozen=True)
class Conversion:
    """What a converter returned: the fp32 base (None when conversion failed) and one artifact per precision."""

    base: Path | None
    artifacts: tuple[Artifact, ...] = field(default_factory=tuple)


class Converter(Protocol):
    format: Format
    precisions: tuple[Precision, ...]  # the precisions this converter can derive
    route: str  # the tool that derives the precisions from the fp32 base, for the report

    def fp32(self, inp: ConvertInput, out: Path) -> None:
        """Write the plain fp32 artifact of ``inp.source`` to ``out``."""

    def quantize(self, base: Path, out: Path, precision: Precision, inp: ConvertInput) -> dict | None:
        """Derive the ``precision`` artifact at ``out`` from the fp32 ``base``; return how (for the report)."""


def failure_reason(stage: str, exc: BaseException) -> str:
    """One line for a failed step: EdgeForge errors keep their message, others get their type named."""
    if isinstance(exc, EdgeForgeError):
        return str(exc)
    text = " ".join(str(exc).split())[:300]
    return f"{stage} failed: {type(exc).__name__}: {text}" if text else f"{stage} failed: {type(exc).__name__}"
