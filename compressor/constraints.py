"""What training must keep after every optimizer step, as objects the training loop applies without knowing them.

:class:`Masks` (unstructured pruning) keeps pruned weights at zero; :class:`Clusters` (weight clustering) ties
every weight of a cluster to the cluster's mean.  Both are keyed by parameter name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

UNASSIGNED = -1  # a clustered weight with no cluster (pruned, zero): kept at zero


class Constraint(Protocol):
    @property
    def kind(self) -> str:
        """What the constraint keeps: ``masks`` or ``clusters``."""

    def apply(self, named: Mapping) -> None:
        """Project the named parameters back onto what the constraint allows, in place."""


@dataclass(frozen=True)
class Masks:
    """Parameter name -> 0/1 mask of the same shape: training keeps the zeros."""

    masks: Mapping
    kind: str = "masks"

    def apply(self, named: Mapping) -> None:
        import torch

        with torch.no_grad():
            for name, mask in self.masks.items():
                named[name].mul_(mask)


@dataclass(frozen=True)
class Clusters:
    """Parameter name -> each weight's cluster index (:data:`UNASSIGNED` where the weight is zero)."""

    assignments: Mapping
    kind: str = "clusters"

    def apply(self, named: Mapping) -> None:
        """Set every clustered weight to its cluster's mean and every unassigned one to zero, in place."""
        import torch

        with torch.no_grad():
            for name, assignment in self.assignments.items():
                weight = named[name]
                flat, index = weight.view(-1), assignment.view(-1)
                kept = index != UNASSIGNED
                count = int(index.max()) + 1 if kept.any() else 0
                sums = flat.new_zeros(count).index_add_(0, index[kept], flat[kept])
                sizes = flat.new_zeros(count).index_add_(0, index[kept], torch.ones_like(flat[kept]))
                means = sums / sizes.clamp(min=1)
                flat.copy_(torch.where(kept, means[index.clamp(min=0)], flat.new_zeros(())))

    def __len__(self) -> int:
        return len(self.assignments)
