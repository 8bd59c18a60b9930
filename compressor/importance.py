"""Importance criteria for structured pruning, in one registry.

Torch-Pruning's own scorers are used where it has them (L1/L2 magnitude,
first-order Taylor, FPGM redundancy).  It has no activation-entropy or
filter-correlation scorer, so those two are small ``Importance`` subclasses
that reuse its group reduction and normalisation.  Every criterion says what it
needs before it can score: the weights alone, gradients of a loss on the user's
data, or activations recorded on that data.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch_pruning as tp
from torch import nn

from compressor.registry import Registry

MAGNITUDE_CRITERIA = ("l1", "l2")
HISTOGRAM_BINS = 32
_OUT_CHANNEL_FNS = (tp.pruner.function.prune_conv_out_channels, tp.pruner.function.prune_linear_out_channels)
_SCORED = (nn.modules.conv._ConvNd, nn.Linear)  # noqa: SLF001 - Torch-Pruning keys on the same base class


@dataclass(frozen=True)
class Criterion:
    """A named way to score channels: ``make()`` builds the scorer, ``needs`` says what to feed it first."""

    make: Callable[[], tp.importance.Importance]
    needs: Literal["weights", "gradients", "activations"]
    description: str


criteria: Registry[Criterion] = Registry("importance criterion")


class _PerOutputChannelImportance(tp.importance.GroupMagnitudeImportance):
    """Score each group by a per-output-channel statistic of its Conv/Linear layers, reduced the Torch-Pruning way."""

    def __init__(self) -> None:
        super().__init__(p=1, group_reduction="mean", normalizer="mean", target_types=list(_SCORED))

    def channel_scores(self, layer: nn.Module) -> torch.Tensor | None:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, group):
        scores, root_idxs = [], []
        for i, (dep, idxs) in enumerate(group):
            layer = dep.layer
            if dep.pruning_fn not in _OUT_CHANNEL_FNS or not isinstance(layer, _SCORED):
                continue
            per_channel = self.channel_scores(layer)
            if per_channel is None:
                continue
            scores.append(per_channel[list(idxs)])
            root_idxs.append(group[i].root_idxs)
        if not scores:
            return None
        return self._normalize(self._reduce(scores, root_idxs) + 1e-8, self.normalizer)


class ActivationEntropyImportance(_PerOutputChannelImportance):
    """Shannon entropy of each output channel's activations over the data: a channel that barely varies carries
    little."""

    def __init__(self) -> None:
        super().__init__()
        self._entropy: dict[nn.Module, torch.Tensor] = {}

    @contextmanager
    def recording(self, model: nn.Module):
        """Within this context, forward passes of ``model`` accumulate each layer's per-channel entropy."""

        def hook(layer, _inputs, output):
            if isinstance(output, torch.Tensor):
                channels = output.detach().movedim(1 if isinstance(layer, nn.modules.conv._ConvNd) else -1, -1)  # noqa: SLF001
                entropy = _histogram_entropy(channels.reshape(-1, channels.shape[-1]))
                self._entropy[layer] = entropy + self._entropy.get(layer, 0)

        handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _SCORED)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def channel_scores(self, layer: nn.Module) -> torch.Tensor | None:
        return self._entropy.get(layer)


def _histogram_entropy(values: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each column of ``values`` [samples, channels], binned over the column's own range."""
    low, high = values.min(0).values, values.max(0).values
    span = (high - low).clamp_min(1e-12)
    bins = ((values - low) / span * (HISTOGRAM_BINS - 1)).round().long()
    counts = torch.zeros(HISTOGRAM_BINS, values.shape[1]).scatter_add_(0, bins, torch.ones_like(values))
    p = counts / values.shape[0]
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(0)
    return torch.where(high > low, entropy, torch.zeros_like(entropy))


class FilterCorrelationImportance(_PerOutputChannelImportance):
    """One minus a filter's largest absolute correlation with another filter of its layer: duplicates score low."""

    def channel_scores(self, layer: nn.Module) -> torch.Tensor | None:
        weight = torch.as_tensor(layer.weight).detach()
        if getattr(layer, "transposed", False):
            weight = weight.transpose(0, 1)
        rows = weight.flatten(1)
        if rows.shape[0] < 2:
            return torch.ones(rows.shape[0])
        corr = torch.nan_to_num(torch.corrcoef(rows)).abs()
        corr.fill_diagonal_(0)
        return 1.0 - corr.max(1).values


criteria.register("l1")(
    Criterion(lambda: tp.importance.MagnitudeImportance(p=1), "weights", "L1 norm of each channel's weights")
)
criteria.register("l2")(
    Criterion(lambda: tp.importance.MagnitudeImportance(p=2), "weights", "L2 norm of each channel's weights")
)
criteria.register("taylor")(
    Criterion(
        tp.importance.TaylorImportance, "gradients", "first-order Taylor: |weight x gradient| of the loss on your data"
    )
)
criteria.register("entropy")(
    Criterion(ActivationEntropyImportance, "activations", "entropy of each channel's activations on your data")
)
criteria.register("correlation")(
    Criterion(FilterCorrelationImportance, "weights", "redundancy: 1 - the largest |correlation| with another filter")
)
criteria.register("fpgm")(
    Criterion(tp.importance.FPGMImportance, "weights", "redundancy: distance to the layer's geometric median (FPGM)")
)
