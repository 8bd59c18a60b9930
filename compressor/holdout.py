"""Honest splits: which samples fit a candidate (calibration, fine-tuning) and which judge it (validation).

:func:`holdout` splits one set of samples, seeded and stratified by label when there are labels, so that no sample
that calibrated or trained a candidate validates it; :func:`overlap` counts samples two sets share (by content), so
the report can say how honest a split the user's own files give.
"""

from __future__ import annotations

import hashlib

import numpy as np

from compressor.data import SampleData
from compressor.metrics import Gate


def select(data: SampleData, rows: np.ndarray) -> SampleData:
    """The samples at ``rows`` (in that order)."""
    labels = None if data.labels is None else data.labels[rows]
    return SampleData({k: v[rows] for k, v in data.inputs.items()}, labels, data.synthetic)


def holdout(data: SampleData, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(fit, validation)``: about ``fraction`` of the samples held out for validation, the rest to
    fit (calibrate, fine-tune) on; disjoint, each shuffled with ``seed``.

    With labels, every class is split in the same proportion (a class with two or more samples keeps at least one
    on each side).  Fewer than two samples cannot be split: raises ``ValueError``.
    """
    count = len(data)
    if count < 2:
        raise ValueError(f"{count} sample cannot be split into fitting and validation parts")
    rng = np.random.default_rng(seed)
    groups = (
        [np.arange(count)]
        if data.labels is None
        else [np.flatnonzero(data.labels == c) for c in np.unique(data.labels)]
    )
    fit, held = [], []
    for rows in groups:
        rows = rng.permutation(rows)
        take = round(fraction * len(rows))
        if len(rows) >= 2:
            take = min(max(take, 1), len(rows) - 1)
        held.append(rows[:take])
        fit.append(rows[take:])
    fit_rows, held_rows = np.concatenate(fit), np.concatenate(held)
    if len(held_rows) == 0 or len(fit_rows) == 0:  # every class a singleton: split the samples themselves
        rows = rng.permutation(count)
        take = min(max(round(fraction * count), 1), count - 1)
        held_rows, fit_rows = rows[:take], rows[take:]
    return rng.permutation(fit_rows), rng.permutation(held_rows)


def fingerprints(data: SampleData) -> set[str]:
    """One digest per sample, of all its input arrays' bytes (labels left out: the same input is the same
    sample)."""
    digests = set()
    arrays = [np.ascontiguousarray(v) for v in data.inputs.values()]
    for i in range(len(data)):
        digest = hashlib.blake2b(digest_size=16)
        for array in arrays:
            digest.update(array[i].tobytes())
        digests.add(digest.hexdigest())
    return digests


def overlap(a: SampleData, b: SampleData) -> int:
    """How many distinct samples ``a`` and ``b`` both hold."""
    return len(fingerprints(a) & fingerprints(b))


FIT_MARGIN = 0.25  # share of the accuracy budget a search fitted on the calibration samples keeps in reserve


def fitting_gate(gate: Gate) -> Gate:
    """The gate a search fitted on the calibration samples aims at: ``gate`` with :data:`FIT_MARGIN` of its budget
    held back, so that what passes there still passes on validation samples it never saw."""
    agreement = gate.min_top1_agreement
    return Gate(
        gate.max_accuracy_drop * (1 - FIT_MARGIN),
        1 - (1 - gate.min_cosine) * (1 - FIT_MARGIN),
        None if agreement is None else 1 - (1 - agreement) * (1 - FIT_MARGIN),
    )
