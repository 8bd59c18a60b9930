"""GPTQ rounding of int8 weights on ai-edge-quantizer's own grid (TFLite).

Rounding each weight to its nearest int8 level ignores what the layer's inputs do with the error; GPTQ (Frantar et
al. 2023, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers") rounds one input
column at a time and moves the columns not yet rounded to compensate, weighted by the inverse of the inputs' second
moment ``H = E[x xᵀ]`` measured on the calibration samples.  The integers it picks sit on the grid the quantizer
uses (symmetric, 127 levels, one scale per output channel: the row's peak over 127), so writing their float values
into the fp32 flatbuffer makes ai-edge-quantizer's own min/max quantization reproduce them exactly: each row's peak
stays at ±127, and the file is the same size and runs the same kernels.

Layers: fully connected ones and 1×1 convolutions with stride one (both a matrix over the input's last axis), whose
weights are float constants of their own (a buffer shared between layers is left alone: one rounding cannot fit two
inputs), whose input has at most :data:`MAX_COLUMNS` channels and whose second moments fit :data:`MOMENT_BYTES`.
The GPTQ libraries of the field (auto-gptq, gptqmodel, torchao) round PyTorch ``Linear`` modules to their own packed
int4 formats for their own kernels; none writes a TFLite flatbuffer's int8 per-channel grid, hence this short
implementation of the published algorithm (act-order, 1 % dampening, lazy block updates of :data:`BLOCK` columns).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compressor.calibration import buffer_users, model_bytes, run_preserving

__all__ = ["SAMPLES", "round_matrix", "write_rounded"]

SAMPLES = 64  # calibration samples the inputs' second moments are measured on
DAMP = 0.01  # dampening: this share of the mean diagonal of H is added to it (the paper's default)
BLOCK = 128  # columns rounded between lazy updates of the rest
MAX_COLUMNS = 4096  # wider inputs are left to nearest rounding (H would take MAX_COLUMNS² doubles)
MOMENT_BYTES = 1 << 31  # the second moments held at once, at most; layers past it keep nearest rounding
LEVELS = 127  # ai-edge-quantizer's symmetric int8 weights: narrow range, [-127, 127]


@dataclass(frozen=True)
class _Layer:
    input_name: str
    weight: int  # tensor index in subgraph 0
    columns: int  # the input's channels


def _layers(model) -> list[_Layer]:
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    subgraph = model.subgraphs[0]
    users = buffer_users(model)
    layers = []
    for op in subgraph.operators:
        name = fb.TFL_OP_CODE_TO_NAME.get(model.operatorCodes[op.opcodeIndex].builtinCode)
        name = str(getattr(name, "value", name))
        if name not in ("FULLY_CONNECTED", "CONV_2D") or len(op.inputs) < 2 or min(op.inputs[:2]) < 0:
            continue
        tensor = subgraph.tensors[op.inputs[1]]
        weights = fb.get_tensor_data(tensor, model.buffers)
        if weights is None or weights.dtype != np.float32 or users.get(tensor.buffer, 0) != 1:
            continue
        if name == "CONV_2D":
            options = op.builtinOptions
            if weights.shape[1:3] != (1, 1) or (options.strideH, options.strideW) != (1, 1):
                continue
        elif weights.ndim != 2:
            continue
        if 0 < weights.shape[-1] <= MAX_COLUMNS:
            source = subgraph.tensors[op.inputs[0]]
            layers.append(_Layer(fb.get_tensor_name(source), int(op.inputs[1]), int(weights.shape[-1])))
    held: dict[str, int] = {}
    kept = []
    for layer in layers:  # one second moment per input tensor, within MOMENT_BYTES
        cost = 0 if layer.input_name in held else 8 * layer.columns**2
        if sum(held.values()) + cost <= MOMENT_BYTES:
            held.setdefault(layer.input_name, cost)
            kept.append(layer)
    return kept


def _second_moments(base: Path, inputs: Mapping[str, np.ndarray], names: set[str]) -> dict[str, np.ndarray]:
    """``E[x xᵀ]`` of each named input tensor over its positions (all but the last axis) and the first
    :data:`SAMPLES` of ``inputs``."""
    import torch

    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def visit(name: str, array: np.ndarray) -> None:
        rows = torch.from_numpy(array.reshape(-1, array.shape[-1]).astype(np.float64))
        sums[name] = sums[name] + rows.T @ rows if name in sums else rows.T @ rows
        counts[name] = counts.get(name, 0) + rows.shape[0]

    run_preserving(base, {k: v[:SAMPLES] for k, v in inputs.items()}, names, visit)
    return {name: (total / counts[name]).numpy() for name, total in sums.items()}


def round_matrix(weights: np.ndarray, moments: np.ndarray) -> np.ndarray:
    """``weights`` [outputs, inputs] rounded by GPTQ for inputs of second moment ``moments`` [inputs, inputs], as
    float values on the int8 grid of one scale per row (the row's peak / 127).  Each row keeps a value at its
    peak's ±127, so the quantizer derives the same scale from the result."""
    import torch

    w = torch.from_numpy(weights.astype(np.float64))
    h = torch.from_numpy(moments.astype(np.float64)).clone()
    columns = w.shape[1]
    scale = (w.abs().amax(dim=1) / LEVELS).clamp(min=1e-12)
    dead = torch.diag(h) == 0  # an input that is always zero: its weights do not matter
    h[dead, dead] = 1.0
    order = torch.argsort(torch.diag(h), descending=True)  # act-order: the inputs with the most energy first
    inverse = torch.argsort(order)
    w, h = w[:, order].clone(), h[order][:, order]
    h += DAMP * torch.mean(torch.diag(h)) * torch.eye(columns, dtype=h.dtype)
    upper = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    levels = torch.zeros_like(w)
    for start in range(0, columns, BLOCK):
        end = min(start + BLOCK, columns)
        block, errors, u = (
            w[:, start:end].clone(),
            torch.zeros(w.shape[0], end - start, dtype=w.dtype),
            upper[start:end, start:end],
        )
        for i in range(end - start):
            level = torch.clamp(torch.round(block[:, i] / scale), -LEVELS, LEVELS)
            levels[:, start + i] = level
            error = (block[:, i] - level * scale) / u[i, i]
            block[:, i:] -= error[:, None] * u[i, i:][None, :]
            errors[:, i] = error
        w[:, end:] -= errors @ upper[start:end, end:]
    levels = levels[:, inverse]
    original = torch.from_numpy(weights.astype(np.float64))
    rows = torch.arange(levels.shape[0])
    peak = original.abs().argmax(dim=1)
    levels[rows, peak] = torch.sign(original[rows, peak]) * LEVELS  # the scale the quantizer will derive
    levels[original.abs().amax(dim=1) == 0] = 0
    return (levels * scale[:, None]).numpy()


def write_rounded(base: Path, out: Path, inputs: Mapping[str, np.ndarray]) -> int:
    """Write ``base`` to ``out`` with each eligible layer's float weights replaced by their GPTQ rounding on the
    int8 grid, measured on ``inputs`` (the calibration samples).  Returns how many layers were rounded."""
    import torch
    from ai_edge_litert.tools import flatbuffer_utils
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    model = fb.read_model(model_bytes(base))
    layers = _layers(model)
    moments = _second_moments(base, inputs, {layer.input_name for layer in layers})
    subgraph, rounded = model.subgraphs[0], 0
    for layer in layers:
        h = moments.get(layer.input_name)
        tensor = subgraph.tensors[layer.weight]
        weights = fb.get_tensor_data(tensor, model.buffers)
        matrix = weights.reshape(weights.shape[0], -1)
        if h is None or h.shape[0] != matrix.shape[1] or not np.isfinite(h).all():
            continue
        try:
            new = round_matrix(matrix, h).astype(np.float32).reshape(weights.shape)
        except torch.linalg.LinAlgError:  # H not positive definite even dampened: nearest rounding for this one
            continue
        model.buffers[tensor.buffer].data = np.frombuffer(new.tobytes(), dtype=np.uint8)
        rounded += 1
    flatbuffer_utils.write_model(model, str(out))
    return rounded
