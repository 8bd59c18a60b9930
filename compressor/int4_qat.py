"""Quantization-aware distillation to blockwise int4: the ``mixed-qat`` candidate of mixed precision (the library
behind the second candidate of ``passes/quantize_mixed_pass.py``).

Post-training int4 costs a transformer far more than the gate allows (all-MiniLM-L6-v2, int4 in blocks of 32:
held-out cosine 0.965 with min-max scales, 0.978 with OSCAR), and the sensitivity search then buys it back with
int8 layers, at 0.17x of the source.  Here the PyTorch model learns to live on the int4 grid instead:

- **The grid is the quantizer's own.**  Each weight that the fp32 flatbuffer holds and that ai-edge-quantizer can
  quantize to int4 in blocks of 32 is found among the module's parameters by content; its fake quantization is
  ai-edge-quantizer's min-max rule (symmetric, one scale per 32 weights along the input dimension: the block's
  largest magnitude / 7, rounded to bfloat16 then float16), with straight-through gradients.  The converter folds a
  preceding LayerNorm's scale into the weights that follow it (litert-torch: the q/k/v and first FFN projections, 24
  of MiniLM's 37), so the match also finds that per-input-channel factor, and the parameter it comes from, and puts
  the grid on the folded product: a grid learnt on the unfolded weights does not survive conversion.
- **A few layers stay above int4, chosen before training**: with every weight fake-quantized, the layers whose int4
  costs the most cosine on the fitting samples per byte saved, within :data:`RAISE_SHARE` of the int4 weights'
  bytes, train unquantized and ship as int8 (in ``bench/probes/int4_minilm.py``, choosing them after training held
  out worse: 0.9879 against 0.9902).
- **Distillation on blends**: the loss is one minus the cosine similarity of the outputs (what the gate compares)
  against the original model on the training samples, each batch blended with a second batch (integer inputs such
  as token ids and their mask: a share of positions taken from the other sample; float inputs: mixup), so that the
  teacher labels inputs the few samples lack (plain samples overfit: 0.9819 held out against 0.9877).

On MiniLM's 45 training sentences (the bench's split) the held-out cosine in LiteRT was 0.9895 after 600 steps
with 30 % of positions blended, 0.9897 with half blended, 0.9899 at half the learning rate, 0.9903 after 1200
steps with half blended (the defaults).  Contiguous spans instead of scattered positions, together with the word
table in blocks of 64 and the bytes that saved spent on three more int8 layers, did no better: 0.9893 at 0.1503x.

Training runs for ``steps`` or ``seconds``, whichever ends first, the learning rate decaying on a cosine over
whichever is nearer its end; it reports to a progress stage.  The trained module is converted by the same route as
the source (litert-torch) and quantized with min-max scales by ai-edge-quantizer: the weights land on their grid.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.utils.parametrize as parametrize

from compressor.batching import batchable
from compressor.data import SampleData
from compressor.errors import TechniqueNotApplicableError
from compressor.finetune import first_output
from compressor.mixed_precision import FP16, SENSITIVITY_SAMPLES, Layer, Rung, ladder, layer_weights, quantize
from compressor.native_output import captured
from compressor.progress import Stage

__all__ = [
    "RAISE_SHARE",
    "Int4QatConfig",
    "Match",
    "OnGrid",
    "blend",
    "eligible",
    "fold_sources",
    "match_weights",
    "on_grid",
    "quantize_trained",
    "train_int4",
]

RUNG = Rung("int4-b32", 4, 32)
RAISE_SHARE = 0.035  # int8 bytes above int4 for the most sensitive layers, of the int4 weights' bytes (MiniLM: 6)
REPORT_EVERY = 25  # steps per progress event
_INT4_BYTES, _RAISE_BYTES = 0.5 + 2 / RUNG.block, 0.5 - 2 / RUNG.block  # per weight: at int4 b32; int8 over it


@dataclass(frozen=True)
class Int4QatConfig:
    """``steps`` optimizer steps of ``batch`` samples at ``learning_rate``, at most ``seconds``; ``blend`` is the
    share of positions an integer input takes from its partner sample."""

    steps: int
    seconds: float
    batch: int = 16
    learning_rate: float = 6e-5
    blend: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.seconds <= 0 or self.batch < 1 or self.learning_rate <= 0:
            raise ValueError(f"int4 QAT needs steps >= 1, seconds > 0, batch >= 1 and a learning rate > 0; got {self}")


@dataclass(frozen=True)
class Match:
    """Where a flatbuffer weight lives in the module: the parameter, and the per-input-channel factor the converter
    multiplied into it (``fold``; None when the weight is the parameter as it is).  When that factor is one 1-D
    parameter of the module times a constant (a LayerNorm's scale, times an attention scale), ``fold_param`` names
    it and ``fold_scale`` is the constant, so the factor can follow that parameter as it trains."""

    param: str
    fold: np.ndarray | None = None
    fold_param: str | None = None
    fold_scale: float = 1.0


def match_weights(module, weights: Mapping[Layer, np.ndarray]) -> dict[Layer, Match]:
    """The module parameter behind each flatbuffer weight, by content: equal, or equal once each input column is
    scaled by one factor (a folded LayerNorm scale).  Layers without such a parameter are left out; each parameter
    backs one layer at most."""
    params = {name: p.detach().float().numpy() for name, p in module.named_parameters()}
    vectors = {name: p for name, p in params.items() if p.ndim == 1}
    used: set[str] = set()
    found = {}
    for layer, weight in weights.items():
        for name, param in params.items():
            if name in used or param.shape != weight.shape or weight.ndim != 2:
                continue
            match = _match(name, param, weight, vectors)
            if match is not None:
                found[layer] = match
                used.add(name)
                break
    return found


def _match(name: str, param: np.ndarray, weight: np.ndarray, vectors: Mapping[str, np.ndarray]) -> Match | None:
    atol = 1e-6 * max(float(np.abs(weight).max()), 1e-12)
    if np.allclose(param, weight, rtol=1e-4, atol=atol):
        return Match(name)
    energy = np.square(param).sum(0)
    fold = np.where(energy > 0, (param * weight).sum(0) / np.where(energy > 0, energy, 1), 1.0).astype(np.float32)
    if not np.allclose(param * fold, weight, rtol=1e-4, atol=atol):
        return None
    if np.ptp(fold) <= 1e-5 * float(np.abs(fold).max()):
        return Match(name, fold)  # one factor for all: a constant (an attention scale), or any all-equal vector
    sources = []
    for vector_name, vector in vectors.items():
        norm = float(np.square(vector).sum()) if vector.shape == fold.shape else 0.0
        scale = float((vector * fold).sum()) / norm if norm > 0 else 0.0
        if scale != 0 and np.allclose(vector * scale, fold, rtol=1e-4, atol=1e-6 * float(np.abs(fold).max())):
            sources.append((vector_name, scale))
    if len(sources) == 1:
        return Match(name, fold, *sources[0])
    return Match(name, fold)  # several parameters alike: held fixed


def fold_sources(matches: Mapping[Layer, Match], vectors: Mapping[str, np.ndarray]) -> set[str]:
    """The 1-D parameters a constant fold may stand for (equal to it up to a scale): training holds them fixed, so
    the factor the converter will fold stays the one the grid was put on."""
    held = set()
    for match in matches.values():
        if match.fold is None or match.fold_param is not None:
            continue
        for name, vector in vectors.items():
            norms = float(np.linalg.norm(vector)) * float(np.linalg.norm(match.fold))
            if vector.shape == match.fold.shape and norms > 0 and abs(vector @ match.fold) / norms > 1 - 1e-6:
                held.add(name)
    return held


def eligible(layer: Layer) -> bool:
    """Whether ai-edge-quantizer offers ``layer`` int4 in blocks of 32 (fully connected and embedding lookups whose
    input dimension 32 divides)."""
    return RUNG in ladder(layer)


def train_int4(
    module,
    base: Path,
    training: SampleData,
    teacher,
    sample_args: tuple,
    config: Int4QatConfig,
    stage: Stage,
) -> tuple[object, dict, dict]:
    """Train a copy of ``module`` (the model ``base``, its fp32 flatbuffer, was converted from) on the int4 grid by
    distillation from ``teacher`` on ``training``; return it with its parametrizations baked in, which parameters
    it trained on the grid (``{name: "int4-b32" | "int8"}``) and how it went (for the report).

    Raises :class:`TechniqueNotApplicableError` when no weight of the flatbuffer is one int4 in blocks of 32 can
    take, or none of those is a parameter of the module."""
    started = time.monotonic()
    torch.manual_seed(config.seed)
    student = copy.deepcopy(module)
    weights = {layer: w for layer, w in layer_weights(base).items() if eligible(layer)}
    if not weights:
        raise TechniqueNotApplicableError("int4 QAT found no layer that takes int4 in blocks of 32")
    matches = match_weights(student, weights)
    if not matches:
        raise TechniqueNotApplicableError("int4 QAT found none of the flatbuffer's int4 weights among the parameters")
    owned = dict(student.named_parameters())
    held = fold_sources(matches, {n: p.detach().numpy() for n, p in owned.items() if p.ndim == 1})
    for name in held:
        owned[name].requires_grad_(False)
    grids: dict[str, OnGrid] = {}
    for match in matches.values():
        live = owned[match.fold_param] if match.fold_param else None
        fold = torch.from_numpy(match.fold) if match.fold is not None and live is None else None
        owner, _, attribute = match.param.rpartition(".")
        grids[match.param] = OnGrid(fold, live, match.fold_scale)
        parametrize.register_parametrization(student.get_submodule(owner), attribute, grids[match.param])
    inputs = [torch.from_numpy(np.ascontiguousarray(v)) for v in training.inputs.values()]
    runner = batchable(student, sample_args)
    probe = [x[:SENSITIVITY_SAMPLES] for x in inputs]
    with torch.no_grad():
        want = first_output(teacher(*probe))
        untrained = _cosine(first_output(runner(*probe)), want)
    sizes = {name: int(owned[name].numel()) for name in grids}
    raised = _raise(grids, sizes, runner, probe, want)
    with torch.no_grad():
        before = _cosine(first_output(runner(*probe)), want)
    losses, steps, out_of_time = _train(runner, teacher, inputs, config, stage)
    with torch.no_grad():
        after = _cosine(first_output(runner(*probe)), want)
    for name in grids:
        owner, _, attribute = name.rpartition(".")
        parametrize.remove_parametrizations(student.get_submodule(owner), attribute, leave_parametrized=True)
    plan = {name: "int8" if name in raised else RUNG.name for name in grids}
    notes = {
        "on_grid": sum(1 for rung in plan.values() if rung == RUNG.name),
        "raised_to_int8": sorted(raised),
        "folded_scales": sum(1 for m in matches.values() if m.fold is not None),
        "held_fixed": sorted(held),
        "steps": steps,
        "stopped_by_time_bound": out_of_time,
        "batch": config.batch,
        "learning_rate": config.learning_rate,
        "blend": config.blend,
        "samples": len(inputs[0]),
        "loss": "1 - cosine to the original model's outputs, on blended samples",
        "first_loss": round(losses[0], 6) if losses else None,
        "final_loss": round(float(np.mean(losses[-REPORT_EVERY:])), 6) if losses else None,
        "fitting_cosine": {"untrained": round(untrained, 6), "raised": round(before, 6), "trained": round(after, 6)},
        "seconds": round(time.monotonic() - started, 2),
    }
    return student, plan, notes


def quantize_trained(student, trained: Mapping[str, str], base: Path, out: Path, log: Path) -> dict[str, int]:
    """Quantize ``base``, the fp32 flatbuffer of the trained ``student``, to ``out``: int4 in blocks of 32 with
    min-max scales for the weights trained on that grid, int8 per channel for every other layer that takes it (fp16
    for the rest); return how many layers went each way (``unmatched``: trained but not found in the file;
    ``off_grid``: quantized to int4 but not on the grid trained for, when the converter folded another factor into
    the trained model's weights than into the original's)."""
    weights = layer_weights(base)
    matches = match_weights(student, {layer: w for layer, w in weights.items() if eligible(layer)})
    plan: dict[Layer, Rung] = {}
    for layer in weights:
        match = matches.get(layer)
        int4 = match is not None and trained.get(match.param) == RUNG.name
        plan[layer] = RUNG if int4 else next((r for r in ladder(layer) if r.name == "int8"), FP16)
    with captured(log):
        quantize(base, plan, out)
    counts = {rung: sum(1 for r in plan.values() if r.name == rung) for rung in (RUNG.name, "int8", FP16.name)}
    found = {m.param for layer, m in matches.items() if plan[layer] is RUNG}
    counts["unmatched"] = sum(1 for name, rung in trained.items() if rung == RUNG.name and name not in found)
    counts["off_grid"] = sum(1 for layer, rung in plan.items() if rung is RUNG and not on_grid(weights[layer]))
    return counts


def on_grid(weight: np.ndarray) -> bool:
    """Whether ``weight`` (a flatbuffer's, output channels first) is exactly representable in int4 blocks of 32 with
    ai-edge-quantizer's min-max scales: whether the factor the converter folded in was the one trained for."""
    blocks = torch.from_numpy(weight).reshape(weight.shape[0], -1, RUNG.block)
    steps = blocks / block_scales(blocks)
    return bool(((steps - torch.round(steps)).abs() > 1e-2).float().mean() < 1e-3)


def block_scales(blocks: torch.Tensor) -> torch.Tensor:
    """ai-edge-quantizer's int4 scale of each block (last axis): its largest magnitude / 7, rounded to bfloat16 then
    float16; 1 for a block of zeros (or one below float16), which stays zeros."""
    scale = blocks.detach().abs().amax(-1, keepdim=True).clamp(min=1e-9) / 7
    scale = scale.to(torch.bfloat16).to(torch.float16).float()
    return torch.where(scale > 0, scale, torch.ones_like(scale))


class OnGrid(torch.nn.Module):
    """Fake int4 quantization of one weight, in blocks of 32 along its input dimension, on the tensor the flatbuffer
    will hold: the weight times the factor the converter folds into it, ``fold`` (a constant) or ``live`` times
    ``scale`` (a parameter that trains, a LayerNorm's scale); ``enabled`` False leaves the weight in float (a layer
    kept above int4)."""

    def __init__(self, fold: torch.Tensor | None, live: torch.Tensor | None = None, scale: float = 1.0) -> None:
        super().__init__()
        self.enabled = True
        self.fold = [fold, live]  # a list: a LayerNorm's own parameter must not be registered here a second time
        self.scale = scale

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return weight
        constant, live = self.fold
        fold = live * self.scale if live is not None else constant
        folded = weight if fold is None else weight * fold
        blocks = folded.reshape(weight.shape[0], -1, RUNG.block)
        scale = block_scales(blocks)
        rounded = torch.clamp(torch.round(blocks / scale), -8, 7) * scale
        grid = (blocks + (rounded - blocks).detach()).reshape(weight.shape)  # straight-through
        return grid if fold is None else grid / torch.where(fold == 0, torch.ones_like(fold), fold)


def _raise(grids: Mapping[str, OnGrid], sizes: Mapping[str, int], runner, probe: Sequence, want) -> set[str]:
    """Turn off the fake quantization of the layers whose int4 costs the most cosine per byte, within
    :data:`RAISE_SHARE` of the int4 weights' bytes; return their names."""
    with torch.no_grad():
        base = _cosine(first_output(runner(*probe)), want)
        gains = {}
        for name, grid in grids.items():
            grid.enabled = False
            gains[name] = (_cosine(first_output(runner(*probe)), want) - base) / (sizes[name] * _RAISE_BYTES)
            grid.enabled = True
    budget, spent, raised = RAISE_SHARE * sum(sizes.values()) * _INT4_BYTES, 0.0, set()
    for name in sorted(gains, key=lambda n: (-gains[n], n)):
        cost = sizes[name] * _RAISE_BYTES
        if gains[name] > 0 and spent + cost <= budget:
            grids[name].enabled, spent = False, spent + cost
            raised.add(name)
    return raised


def _train(runner, teacher, inputs: list, config: Int4QatConfig, stage: Stage) -> tuple[list[float], int, bool]:
    params = [p for p in runner.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    count, batch = len(inputs[0]), min(config.batch, len(inputs[0]))
    started, losses, step = time.monotonic(), [], 0
    while step < config.steps:
        done = max(step / config.steps, (time.monotonic() - started) / config.seconds)
        if done >= 1:
            break
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * 0.5 * (1 + math.cos(math.pi * done))
        rows = torch.randint(0, count, (batch,), generator=generator)
        partners = torch.randint(0, count, (batch,), generator=generator)
        x = blend([t[rows] for t in inputs], [t[partners] for t in inputs], config.blend, generator)
        with torch.no_grad():
            target = first_output(teacher(*x))
        loss = 1 - _cosines(first_output(runner(*x)), target).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        step += 1
        if step % REPORT_EVERY == 0:
            stage.advance(f"step {step}/{config.steps}: loss {np.mean(losses[-REPORT_EVERY:]):.5f}")
    return losses, step, step < config.steps


def blend(batch: list, partners: list, share: float, generator) -> list:
    """Integer inputs take ``share`` of their positions (one draw per sample and position, shared by inputs of one
    shape: ids and their mask stay aligned) from the partner sample; float inputs are mixed up with it."""
    masks: dict[tuple[int, ...], torch.Tensor] = {}
    weights = torch.rand(len(batch[0]), generator=generator)
    out = []
    for x, other in zip(batch, partners):
        if x.is_floating_point():
            w = weights.view(-1, *([1] * (x.dim() - 1)))
            out.append(w * x + (1 - w) * other)
        elif x.dim() >= 2:
            key = tuple(x.shape[:2])
            if key not in masks:
                masks[key] = torch.rand(key, generator=generator) < share
            mask = masks[key].view(*key, *([1] * (x.dim() - 2)))
            out.append(torch.where(mask, other, x))
        else:
            out.append(x)
    return out


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.flatten(1).float(), b.flatten(1).float(), dim=1)


def _cosine(a, b) -> float:
    return float(_cosines(a, b).mean())
