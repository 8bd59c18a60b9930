"""Fine-tuning and knowledge distillation: one bounded training loop for pruned models.

The loss is cross-entropy on hard labels, the teacher's soft targets at a
temperature (Hinton et al.), or both mixed by ``alpha``; without labels only the
teacher's outputs are used, so unlabeled data works.  When distilling float
inputs, the soft-target term is taken on mixup blends of the batch, with the
teacher queried on the same blends ("function matching", Beyer et al. 2022):
the teacher labels points the data set does not hold, which is where
distillation beats hard labels on small data.  Training stops after the
epochs or the wall-clock bound, whichever comes first, and reports each epoch
as a progress event.  Constraints (``compressor.constraints``: pruning masks,
weight clusters), when given, are applied after every step, so pruned weights
stay zero and clustered weights move as their cluster's mean.  A model that
accepts only a fixed batch (an export with the batch fixed at one) is trained
through :func:`compressor.batching.batchable`, one such batch at a time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from compressor.batching import batchable
from compressor.data import SampleData
from compressor.progress import Stage

if TYPE_CHECKING:
    from compressor.constraints import Constraint

BATCH = 64
LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class TrainConfig:
    """How long and on what loss to train; ``teacher`` None means hard labels only."""

    epochs: int
    seconds: float
    seed: int = 0
    temperature: float = 2.0
    alpha: float = 0.5
    learning_rate: float = LEARNING_RATE
    mixup: bool = True


def tensors(data: SampleData) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    inputs = [torch.from_numpy(np.ascontiguousarray(v)) for v in data.inputs.values()]
    return inputs, None if data.labels is None else torch.from_numpy(data.labels)


def first_output(result) -> torch.Tensor:
    """The first tensor of a model's result (nested tuples, lists and mappings: the first entry of each)."""
    while True:
        if isinstance(result, (tuple, list)):
            result = result[0]
        elif isinstance(result, Mapping):
            result = next(iter(result.values()))
        else:
            return result


def is_classifier_output(output: torch.Tensor, labels: torch.Tensor | None) -> bool:
    return labels is not None or (output.dim() == 2 and output.shape[1] > 1)


def task_loss(output: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """The loss a gradient-based importance criterion differentiates: cross-entropy on labels, or on the model's
    own top-1."""
    if labels is not None:
        return nn.functional.cross_entropy(output, labels)
    if is_classifier_output(output, None):
        return nn.functional.cross_entropy(output, output.detach().argmax(1))
    return output.pow(2).mean()


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None, config: TrainConfig
) -> torch.Tensor:
    """Soft-target KL at temperature T (scaled by T^2) mixed with hard-label cross-entropy; MSE for non-classifiers."""
    if not is_classifier_output(teacher, labels):
        return nn.functional.mse_loss(student, teacher)
    t = config.temperature
    soft = nn.functional.kl_div(
        nn.functional.log_softmax(student / t, dim=1),
        nn.functional.log_softmax(teacher / t, dim=1),
        reduction="batchmean",
        log_target=True,
    ) * (t * t)
    if labels is None:
        return soft
    return config.alpha * soft + (1 - config.alpha) * nn.functional.cross_entropy(student, labels)


@torch.no_grad()
def predict(module: nn.Module, inputs: list[torch.Tensor]) -> torch.Tensor:
    """The first output of ``module`` over all samples, in batches."""
    _set_mode(module, training=False)
    count = len(inputs[0])
    return torch.cat(
        [first_output(module(*(x[i : i + BATCH * 4] for x in inputs))) for i in range(0, count, BATCH * 4)]
    )


def train(
    student: nn.Module,
    data: SampleData,
    config: TrainConfig,
    *,
    teacher: nn.Module | None = None,
    constraints: Sequence[Constraint] = (),
    stage: Stage | None = None,
) -> dict:
    """Train ``student`` in place; return what happened (epochs run, seconds, last loss, whether time ran out)."""
    torch.manual_seed(config.seed)
    inputs, labels = tensors(data)
    if teacher is None and labels is None:
        raise ValueError("fine-tuning without labels needs a teacher to learn from")
    if teacher is not None:
        _set_mode(teacher, training=False)
    model = batchable(student, tuple(x[:1] for x in inputs))
    mixup = teacher is not None and config.mixup and all(x.is_floating_point() for x in inputs)
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(config.epochs, 1))
    generator = torch.Generator().manual_seed(config.seed)
    named = dict(student.named_parameters())
    started, epochs_run, last_loss, out_of_time = time.monotonic(), 0, float("nan"), False
    epoch_losses: list[float] = []  # each epoch's mean batch loss: the report's fine-tuning curve
    _set_mode(student, training=True)
    for epoch in range(config.epochs):
        batch_losses = []
        for idx in torch.randperm(len(inputs[0]), generator=generator).split(BATCH):
            optimizer.zero_grad()
            batch = [x[idx] for x in inputs]
            batch_labels = None if labels is None else labels[idx]
            loss = _batch_loss(model, teacher, batch, batch_labels, config, mixup, generator)
            loss.backward()
            optimizer.step()
            for constraint in constraints:
                constraint.apply(named)
            last_loss = loss.item()
            batch_losses.append(last_loss)
            if time.monotonic() - started > config.seconds:
                out_of_time = True
                break
        scheduler.step()
        epochs_run = epoch + 1
        epoch_losses.append(round(sum(batch_losses) / len(batch_losses), 6))
        if stage is not None:
            stage.advance(
                f"epoch {epochs_run}: loss {last_loss:.4f}" + (" (time bound reached)" if out_of_time else "")
            )
        if out_of_time:
            break
    _set_mode(student, training=False)
    return {
        "epochs": epochs_run,
        "seconds": round(time.monotonic() - started, 2),
        "stopped_by_time_bound": out_of_time,
        "final_loss": round(last_loss, 6),
        "epoch_losses": epoch_losses,
        "loss": "distillation" if teacher is not None else "cross-entropy",
        "samples": len(inputs[0]),
    }


def _batch_loss(student, teacher, batch, labels, config: TrainConfig, mixup: bool, generator) -> torch.Tensor:
    if teacher is None:
        return nn.functional.cross_entropy(first_output(student(*batch)), labels)
    if not mixup:
        with torch.no_grad():
            target = first_output(teacher(*batch))
        return distillation_loss(first_output(student(*batch)), target, labels, config)
    weights = torch.rand(len(batch[0]), generator=generator)
    partner = torch.randperm(len(batch[0]), generator=generator)
    blended = [_blend(x, x[partner], weights) for x in batch]
    with torch.no_grad():
        target = first_output(teacher(*blended))
    soft = distillation_loss(first_output(student(*blended)), target, None, config)
    if labels is None:
        return soft
    hard = nn.functional.cross_entropy(first_output(student(*batch)), labels)
    return config.alpha * soft + (1 - config.alpha) * hard


def _blend(x: torch.Tensor, other: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return weights.view(-1, *([1] * (x.dim() - 1))) * x + (1 - weights.view(-1, *([1] * (x.dim() - 1)))) * other


def _set_mode(module: nn.Module, training: bool) -> None:
    """Switch train/eval mode where the module supports it (an ExportedProgram's module is fixed in eval form)."""
    with contextlib.suppress(NotImplementedError):
        module.train(training)
