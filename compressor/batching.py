"""Honouring a model's own batch constraint wherever it runs.

``torch.export.export(model, (x,))`` (how almost everyone exports) fixes the batch at the sample's size, usually
one; the program then rejects any other batch with a guard failure.  Everything that runs a source model on many
samples (reference outputs, calibration, teacher soft targets, sensitivity, training) goes through
:func:`fixed_batch` and :class:`FixedBatch`, which feed such a model exactly the batch it accepts.
"""

from __future__ import annotations

from collections.abc import Sequence

from compressor.tensors import TensorSpec


def fixed_batch(inputs: Sequence[TensorSpec]) -> int | None:
    """The batch the model accepts when any input fixes its first axis (``None``: every batch axis is dynamic).

    Inputs that disagree (a state fixed at 1 beside a dynamic input, two different sizes) leave one sample at a
    time as the only safe batch.
    """
    sizes = {int(spec.shape[0]) for spec in inputs if spec.shape and spec.shape[0] is not None}
    if not sizes:
        return None
    dynamic = any(spec.shape and spec.shape[0] is None for spec in inputs)
    return next(iter(sizes)) if len(sizes) == 1 and not dynamic else 1


def describe_batch(inputs: Sequence[TensorSpec]) -> str:
    """``dynamic`` or ``fixed at N``, for reports."""
    size = fixed_batch(inputs)
    return "dynamic" if size is None else f"fixed at {size}"


def _module_class():
    import torch
    from torch.utils import _pytree as pytree

    class FixedBatchModule(torch.nn.Module):
        """Runs ``module``, which accepts batches of exactly ``size``, on any batch: in chunks of ``size``, the
        last one padded by repeating its final sample, outputs concatenated and the padding dropped."""

        def __init__(self, module: torch.nn.Module, size: int) -> None:
            super().__init__()
            self.module, self.size = module, size

        def forward(self, *args):
            count = args[0].shape[0]
            if count == self.size:
                return self.module(*args)
            results, spec = [], None
            for start in range(0, count, self.size):
                chunk = [_padded(a[start : start + self.size], self.size) for a in args]
                leaves, spec = pytree.tree_flatten(self.module(*chunk))
                results.append(leaves)
            joined = [torch.cat([r[i] for r in results])[:count] for i in range(len(results[0]))]
            return pytree.tree_unflatten(joined, spec)

    def _padded(tensor, size: int):
        missing = size - tensor.shape[0]
        if missing <= 0:
            return tensor
        return torch.cat([tensor, tensor[-1:].expand(missing, *tensor.shape[1:])])

    return FixedBatchModule


def FixedBatch(module, size: int):  # noqa: N802 - reads as the class it builds (torch loads lazily)
    """``module`` wrapped to run on any batch though it accepts only batches of ``size``."""
    return _module_class()(module, size)


def batchable(module, sample_args: tuple):
    """``module`` when it runs on a batch of two built from ``sample_args``, else wrapped in :func:`FixedBatch`
    at the sample's batch size (a program exported with its batch fixed)."""
    import torch

    pair = tuple(torch.cat([a, a]) for a in sample_args)
    try:
        with torch.no_grad():
            module(*pair)
    except Exception:  # noqa: BLE001 - any refusal of the bigger batch means the batch is fixed
        return FixedBatch(module, int(sample_args[0].shape[0]))
    return module
