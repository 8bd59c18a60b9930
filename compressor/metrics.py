"""Compare an artifact's outputs with the original model's on the same inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def is_classifier(outputs: list[np.ndarray], labels: np.ndarray | None) -> bool:
    """Labels, or a first output of shape [N, C] with C > 1, mark a classifier."""
    first = outputs[0]
    return labels is not None or (first.ndim == 2 and first.shape[1] > 1)


def compare(reference: list[np.ndarray], candidate: list[np.ndarray], labels: np.ndarray | None) -> dict:
    """Accuracy and drop (with labels), top-1 agreement (classifiers), cosine min/mean and max abs error (always)."""
    if len(reference) != len(candidate):
        raise ValueError(f"artifact returned {len(candidate)} outputs, the original model {len(reference)}")
    count = len(reference[0])
    ref = np.concatenate([r.reshape(count, -1).astype(np.float64) for r in reference], axis=1)
    got = np.concatenate([c.reshape(count, -1).astype(np.float64) for c in candidate], axis=1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    dots = (ref * got).sum(axis=1)
    cosine = np.where(
        norms > 0, dots / np.where(norms > 0, norms, 1), np.where(np.abs(ref - got).max(axis=1) == 0, 1.0, 0.0)
    )
    metrics = {
        "accuracy": None,
        "reference_accuracy": None,
        "accuracy_drop": None,
        "top1_agreement": None,
        "cosine_min": float(cosine.min()),
        "cosine_mean": float(cosine.mean()),
        "max_abs_error": float(np.abs(ref - got).max()),
    }
    if is_classifier(reference, labels):
        ref_top1, got_top1 = reference[0].argmax(axis=1), candidate[0].argmax(axis=1)
        metrics["top1_agreement"] = float((ref_top1 == got_top1).mean())
        if labels is not None:
            ref_acc, got_acc = float((ref_top1 == labels).mean()), float((got_top1 == labels).mean())
            metrics.update(
                accuracy=got_acc, reference_accuracy=ref_acc, accuracy_drop=round(100 * (ref_acc - got_acc), 6)
            )
    return metrics


@dataclass(frozen=True)
class Gate:
    """The accuracy budget: accuracy drop within ``max_accuracy_drop`` points when labels exist, otherwise mean
    cosine at or above ``min_cosine``."""

    max_accuracy_drop: float
    min_cosine: float

    def passes(self, metrics: dict) -> bool:
        if metrics["accuracy_drop"] is not None:
            return metrics["accuracy_drop"] <= self.max_accuracy_drop
        return metrics["cosine_mean"] >= self.min_cosine


def passes_gate(metrics: dict, max_accuracy_drop: float, min_cosine: float) -> bool:
    """Accuracy drop within budget when labels exist; otherwise mean cosine at or above the floor."""
    return Gate(max_accuracy_drop, min_cosine).passes(metrics)
