"""Weight clustering (weight sharing): each weight matrix or kernel keeps at most ``k`` distinct non-zero values.

This is the "trained quantization" step of Deep Compression (Han et al. 2016): the non-zero weights of each
layer are clustered by 1-D k-means from a linear initialisation (evenly spaced between the smallest and the
largest weight, which keeps the rare large weights that matter most), every weight is replaced by its cluster's
centroid, and fine-tuning then moves the centroids: after each optimizer step the weights of a cluster are set
back to their mean, so a cluster moves by its members' average update.  Zeros stay zeros, so clustering keeps
what unstructured pruning removed.

Clustering leaves the raw size of every artifact as it is; what it buys is the download (deflated) size.  With
one int8 scale per tensor, ``k`` centroids become at most ``k`` distinct bytes, and deflate (what app stores
ship) codes a byte of a k-symbol alphabet in about log2(k) bits instead of the ~7.5 bits a surviving
per-channel int8 weight of a pruned layer costs (fp32 artifacts, k distinct floats a layer, deflate well too).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from compressor.constraints import UNASSIGNED, Clusters, Masks
from compressor.errors import TechniqueNotApplicableError
from compressor.layered import has_batch_norm, prunable_form, rebuilt_with_layers, weight_matrices

LLOYD_ITERATIONS = 30


def cluster_weights(
    module: nn.Module, clusters: int, masks: Masks | None = None, example_args: tuple | None = None
) -> tuple[nn.Module, Clusters]:
    """A copy of ``module`` whose weight matrices hold at most ``clusters`` distinct non-zero values each.

    Returns the copy and its :class:`~compressor.constraints.Clusters`: per parameter name, each weight's cluster
    index (:data:`~compressor.constraints.UNASSIGNED` where the weight is zero, or masked out by ``masks``).
    With ``example_args``, a module with batch norms is first rebuilt through
    ONNX with them folded into the weights (folding at conversion would scale each channel's shared values apart),
    and one whose weights are graph constants (a model file) is rebuilt with layers, as unstructured pruning does.
    """
    if example_args is not None and has_batch_norm(module):
        module = rebuilt_with_layers(
            module, example_args, "weight clustering", "its batch norms must be folded into the weights first"
        )
    elif example_args is not None:
        module = prunable_form(module, example_args, "unstructured", technique="weight clustering")
    model = copy.deepcopy(module)
    targets = dict(weight_matrices(model))
    if not targets:
        raise TechniqueNotApplicableError("weight clustering cannot apply: the model has no weight matrices or kernels")
    assignments = {}
    with torch.no_grad():
        for name, weight in targets.items():
            keep = weight != 0
            if masks is not None and name in masks.masks:
                keep &= masks.masks[name].bool()
            centroids, index = kmeans_1d(weight[keep], clusters)
            assignment = torch.full(weight.shape, UNASSIGNED, dtype=torch.long)
            assignment[keep] = index
            weight[~keep] = 0.0
            weight[keep] = centroids[index]
            assignments[name] = assignment
    return model, Clusters(assignments)


def kmeans_1d(values: torch.Tensor, clusters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroids (ascending) and each value's centroid index: Lloyd's algorithm from a linear initialisation."""
    if values.numel() == 0:
        return values.new_zeros(0), torch.zeros(0, dtype=torch.long)
    values = values.detach().double()
    centroids = torch.linspace(float(values.min()), float(values.max()), clusters, dtype=torch.float64)
    for _ in range(LLOYD_ITERATIONS):
        index = _nearest(values, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, index, values)
        counts = torch.zeros_like(centroids).index_add_(0, index, torch.ones_like(values))
        moved = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        if torch.equal(moved, centroids):
            break
        centroids = moved.sort().values
    index = _nearest(values, centroids)
    return centroids.float(), index


def _nearest(values: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest of the ascending ``centroids`` for each value (boundaries at the midpoints)."""
    return torch.bucketize(values, (centroids[1:] + centroids[:-1]) / 2)


def distinct_values(module: nn.Module, clusters: Clusters) -> int:
    """The largest number of distinct non-zero values any clustered weight matrix holds (``k`` or fewer)."""
    named = dict(module.named_parameters())
    return max(
        (int(torch.unique(named[name][a != UNASSIGNED]).numel()) for name, a in clusters.assignments.items()), default=0
    )


__all__ = ["cluster_weights", "distinct_values", "kmeans_1d"]
