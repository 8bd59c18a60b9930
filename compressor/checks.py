"""Everything a build can know is wrong before it starts: options against the profile and the model.

Each check raises an :class:`~compressor.errors.EdgeForgeError` naming what was asked, what the profile or the
model offers, and what to do instead, so no conversion runs for a request that cannot succeed.
"""

from __future__ import annotations

import numpy as np

from compressor import mixed_precision
from compressor.data import SampleData
from compressor.errors import InvalidInputError, TechniqueNotApplicableError
from compressor.options import CompressOptions
from compressor.profiles import Format, Profile
from compressor.sources import Source


def check_request(
    source: Source, data: SampleData, profile: Profile, options: CompressOptions, split=None, student=None
) -> None:
    """Raise unless ``options`` (and a split request or student) can be honoured for ``source`` on ``profile``."""
    refusals = {f.value: source.route_refusal(f.value) for f in profile.accepts.formats}
    if all(refusals.values()):
        reasons = "; ".join(f"{fmt}: {why}" for fmt, why in refusals.items())
        raise TechniqueNotApplicableError(f"profile {profile.name!r} ships {', '.join(refusals)}, and {reasons}")
    _check_precisions(profile, options)
    _check_mixed_precision(profile, options)
    _check_calibration(profile, options)
    needs_torch = [
        name
        for name, wanted in (
            ("pruning", options.prune != "none"),
            ("weight clustering", options.cluster is not None),
            ("distillation", options.distill or student is not None),
            ("split inference", split is not None),
        )
        if wanted
    ]
    if needs_torch and not source.has_torch_route:
        raise TechniqueNotApplicableError(
            f"{', '.join(needs_torch)} {'needs' if len(needs_torch) == 1 else 'need'} the model in PyTorch, and "
            f"{source.format} models have no route to PyTorch here; submit an ExportedProgram (.pt2), TorchScript "
            "or ONNX file of the model, or build without these options"
        )
    if student is not None:
        check_student(source, data, student)


def _check_precisions(profile: Profile, options: CompressOptions) -> None:
    if options.precisions is None:
        return
    offered = [p for p in options.precisions if p in profile.accepts.precisions]
    if not offered:
        asked = ", ".join(p.value for p in options.precisions)
        accepted = ", ".join(p.value for p in profile.accepts.precisions)
        raise InvalidInputError(
            f"--precision {asked}: profile {profile.name!r} accepts {accepted} only; ask for one of those, or choose "
            "a profile that accepts what you need"
        )


def _check_mixed_precision(profile: Profile, options: CompressOptions) -> None:
    if not options.mixed_precision:
        return
    if not mixed_precision.accepted(profile, options):
        raise TechniqueNotApplicableError(
            "mixed precision by sensitivity makes TFLite models with integer weights and float activations, which "
            f"profile {profile.name!r} does not accept (with these options); drop mixed precision or choose a "
            "profile whose TFLite precisions include int8-dynamic"
        )


def _check_calibration(profile: Profile, options: CompressOptions) -> None:
    from compressor.converters.onnx import ORT_METHODS

    method = options.calibration
    if method in ("auto", *ORT_METHODS) or Format.TFLITE in profile.accepts.formats:
        return
    raise InvalidInputError(
        f"--calibration {method}: profile {profile.name!r} ships ONNX only, and onnxruntime calibrates with "
        f"{', '.join(ORT_METHODS)}; choose one of those or auto"
    )


def check_student(source: Source, data: SampleData, student) -> None:
    """Raise :class:`InvalidInputError` unless ``student`` runs on ``source``'s inputs and matches its output shapes."""
    import torch

    if not isinstance(student, torch.nn.Module):
        raise InvalidInputError(f"student must be a torch.nn.Module; got {type(student).__name__}")
    args = tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in data.take(0, min(len(data), 2)).inputs.values())
    with torch.no_grad():
        expected = _shapes(source.teacher(tuple(a[:1] for a in args))(*args))
        try:
            got = _shapes(student.eval()(*args))
        except Exception as exc:  # noqa: BLE001 - any failure here means the student does not take these inputs
            raise InvalidInputError(
                f"the student cannot run on the model's inputs ({', '.join(s.describe() for s in source.inputs)}): "
                f"{type(exc).__name__}: {str(exc)[:200]}; its forward() must take the same tensors as the teacher's"
            ) from None
    if got != expected:
        raise InvalidInputError(
            f"the student's outputs have shapes {got}, the teacher's {expected} (on 2 samples); distillation needs the "
            "student to give outputs of the same shapes as the teacher"
        )


def _shapes(result) -> list[tuple[int, ...]]:
    outputs = result if isinstance(result, (tuple, list)) else (result,)
    return [tuple(getattr(o, "shape", ())) for o in outputs]
