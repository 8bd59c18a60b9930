"""Converters: functions of an explicit input that return artifacts.

A converter turns a :class:`~compressor.sources.Source` into one fp32 artifact of its format (its *base*) and
derives each requested precision from that base with the format's own quantization tools.  Everything it needs
comes in one frozen :class:`ConvertInput`; it knows nothing of the build around it, so the pipeline, the pruned and
clustered variants, the split head and the cloud model all call the same functions.

Adding a format: write ``compressor/converters/<format>.py`` with a :class:`Converter` and register it here.
"""

from __future__ import annotations

from collections.abc import Callable

from compressor.converters import onnx, tflite
from compressor.converters.base import (
    Artifact,
    Conversion,
    Converter,
    ConvertInput,
    WeightGranularity,
    failure_reason,
)
from compressor.native_output import captured
from compressor.profiles import Format
from compressor.registry import Registry

converters: Registry[Converter] = Registry("artifact format")


def convert(fmt: Format, inp: ConvertInput, progress: Callable[[str], None] | None = None) -> Conversion:
    """Convert ``inp.source`` to ``fmt`` and derive every precision in ``inp.precisions`` the converter supports.

    Nothing here raises for one failed step: a base that cannot be made fails every precision with the reason, a
    quantizer that fails fails its precision alone.  ``progress`` is called after each step.
    """
    converter = converters.get(fmt.value)
    inp.workdir.mkdir(parents=True, exist_ok=True)
    base = inp.workdir / f"fp32-base.{fmt.value}"
    wanted = [p for p in inp.precisions if p in converter.precisions]
    try:
        with captured(inp.log_path):
            converter.fp32(inp, base)
    except Exception as exc:  # noqa: BLE001 - a failed conversion is a reason for each candidate, not a crash
        reason = failure_reason(f"{fmt.value} conversion", exc)
        return Conversion(None, tuple(Artifact(fmt, p, None, reason) for p in wanted))
    (progress or _ignore)("fp32 base")
    artifacts = []
    for precision in wanted:
        out = inp.workdir / f"{precision.value}.{fmt.value}"
        try:
            with captured(inp.log_path):
                notes = converter.quantize(base, out, precision, inp)
            artifacts.append(Artifact(fmt, precision, out, notes=notes or None))
        except Exception as exc:  # noqa: BLE001 - one failed precision must not sink the others
            artifacts.append(Artifact(fmt, precision, None, failure_reason("quantization", exc)))
        (progress or _ignore)(precision.value)
    return Conversion(base, tuple(artifacts))


def _ignore(_message: str) -> None:
    pass


for _converter in (tflite.CONVERTER, onnx.CONVERTER):
    converters.register(_converter.format.value)(_converter)

__all__ = [
    "Artifact",
    "Conversion",
    "ConvertInput",
    "Converter",
    "WeightGranularity",
    "convert",
    "converters",
    "failure_reason",
]
