"""``torch.onnx.export`` (dynamo) of a module, with a dynamic batch axis where the module allows one."""

from __future__ import annotations

from pathlib import Path

ONNX_OPSET = 18
MAX_BATCH = 4096


def export_torch(module, sample_args: tuple, out: str | Path, dynamic_batch: bool) -> None:
    """Export a ``torch.nn.Module`` to ONNX at ``out`` (dynamic batch when it allows one and it is asked for)."""
    import torch

    dynamic = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        dynamic = tuple({0: batch} for _ in sample_args)
    try:
        program = torch.onnx.export(module, sample_args, dynamo=True, dynamic_shapes=dynamic, opset_version=ONNX_OPSET)
    except Exception:
        if dynamic is None:
            raise
        program = torch.onnx.export(module, sample_args, dynamo=True, opset_version=ONNX_OPSET)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(out))
