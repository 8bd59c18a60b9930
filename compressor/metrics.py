"""Compare an artifact's outputs with the original model's on the same inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def is_classifier(outputs: list[np.ndarray], labels: np.ndarray | None) -> bool:
    """Labels, or a first output of shape [N, C] with C > 1 that is not an L2-normalised embedding, mark a
    classifier (scores or probabilities, whose largest coordinate is the predicted class)."""
    first = outputs[0]
    return labels is not None or (first.ndim == 2 and first.shape[1] > 1 and not is_unit_embedding(first))


def is_unit_embedding(output: np.ndarray) -> bool:
    """Rows of unit L2 norm with negative coordinates: a normalised embedding (a sentence encoder's output), whose
    argmax means nothing. A confident softmax also has rows of norm close to 1, but never a negative value."""
    if not np.issubdtype(output.dtype, np.floating) or not len(output):
        return False
    norms = np.linalg.norm(output.reshape(len(output), -1).astype(np.float64), axis=1)
    return bool(np.allclose(norms, 1.0, atol=PROBABILITY_SLACK) and (output < -PROBABILITY_SLACK).any())


ZERO = 1e-30  # below this an output value is numerically zero (float32's smallest normal is 1.2e-38)
NEAR_ZERO = 1e-6  # a sample whose output norm is this small against the largest one has no direction to compare


def is_sequence_classifier(outputs: list[np.ndarray], labels: np.ndarray | None) -> bool:
    """A first output of shape [N, T, C] with C > 1 and no per-sample labels holding a probability distribution at
    each of T positions (a text recogniser's softmax over characters). Other [N, T, D] outputs are features (a
    transformer's hidden states: MiniLM, BERT, Whisper's encoder), whose largest coordinate means nothing."""
    first = outputs[0]
    if labels is not None or first.ndim != 3 or first.shape[-1] < 2 or not np.issubdtype(first.dtype, np.floating):
        return False
    return bool((first >= -PROBABILITY_SLACK).all() and np.allclose(first.sum(axis=-1), 1.0, atol=PROBABILITY_SLACK))


PROBABILITY_SLACK = 1e-3  # float rounding of a softmax: its values sum to 1 within this


def compare(reference: list[np.ndarray], candidate: list[np.ndarray], labels: np.ndarray | None) -> dict:
    """Accuracy and drop (with labels), top-1 agreement (classifiers), cosine min/mean, max abs error and the error
    relative to the output scale (always).

    Cosine is taken over samples whose reference output has a direction; a sample whose output is (near) zero,
    against the largest output or absolutely, is compared by its error relative to the output scale instead, and
    when every sample is like that, ``relative_error`` is the metric that decides (``gate_metric``).
    """
    if len(reference) != len(candidate):
        raise ValueError(f"artifact returned {len(candidate)} outputs, the original model {len(reference)}")
    count = len(reference[0])
    ref = np.concatenate([r.reshape(count, -1).astype(np.float64) for r in reference], axis=1)
    got = np.concatenate([c.reshape(count, -1).astype(np.float64) for c in candidate], axis=1)
    ref_norm, got_norm = np.linalg.norm(ref, axis=1), np.linalg.norm(got, axis=1)
    scale = max(float(np.abs(ref).max(initial=0.0)), ZERO)
    error = np.abs(ref - got).max(axis=1, initial=0.0)
    directed = (ref_norm > max(NEAR_ZERO * float(ref_norm.max(initial=0.0)), ZERO)) & (got_norm > ZERO)
    cosine = np.where(directed, (ref * got).sum(axis=1) / np.where(directed, ref_norm * got_norm, 1.0), 0.0)
    flat_ok = 1.0 - np.minimum(error / scale, 1.0)  # degenerate samples: 1 - relative error
    cosine = np.where(directed, cosine, flat_ok)
    metrics = {
        "accuracy": None,
        "reference_accuracy": None,
        "accuracy_drop": None,
        "top1_agreement": None,
        "cosine_min": float(cosine.min()),
        "cosine_mean": float(cosine.mean()),
        "max_abs_error": float(error.max(initial=0.0)),
        "relative_error": float(error.max(initial=0.0) / scale),
        "degenerate_samples": int((~directed).sum()),
        "gate_metric": "accuracy_drop"
        if labels is not None
        else ("cosine_mean" if directed.any() else "relative_error"),
    }
    if is_sequence_classifier(reference, labels):  # [N, T, C] scores: the top-1 class at every position
        kept = reference[0].argmax(axis=-1) == candidate[0].argmax(axis=-1)
        metrics.update(top1_agreement=float(kept.mean()), top1_changed=int((~kept).sum()))
    elif is_classifier(reference, labels):
        ref_top1, got_top1 = reference[0].argmax(axis=1), candidate[0].argmax(axis=1)
        metrics.update(
            top1_agreement=float((ref_top1 == got_top1).mean()), top1_changed=int((ref_top1 != got_top1).sum())
        )
        if labels is not None:
            ref_acc, got_acc = float((ref_top1 == labels).mean()), float((got_top1 == labels).mean())
            metrics.update(
                accuracy=got_acc, reference_accuracy=ref_acc, accuracy_drop=round(100 * (ref_acc - got_acc), 6)
            )
    return metrics


@dataclass(frozen=True)
class Gate:
    """The accuracy budget: accuracy drop within ``max_accuracy_drop`` points when labels exist; otherwise mean
    cosine at or above ``min_cosine`` and, for classifier outputs (per position, for sequences), the original's
    top-1 class kept on at least ``min_top1_agreement`` of them (None: not gated, e.g. on synthetic inputs)."""

    max_accuracy_drop: float
    min_cosine: float
    min_top1_agreement: float | None = None

    def passes(self, metrics: dict) -> bool:
        if metrics["accuracy_drop"] is not None:
            return metrics["accuracy_drop"] <= self.max_accuracy_drop
        if self.min_top1_agreement is not None and not self._keeps_top1(metrics):
            return False
        if metrics.get("gate_metric") == "relative_error":  # outputs without a direction: error against scale
            return metrics["relative_error"] <= 1.0 - self.min_cosine
        return metrics["cosine_mean"] >= self.min_cosine

    def _keeps_top1(self, metrics: dict) -> bool:
        """Agreement at or above the floor; one changed prediction always passes, since a sample set of n cannot
        tell agreements closer than 1/n (one flip in 96 samples is 98.96%)."""
        agreement, changed = metrics.get("top1_agreement"), metrics.get("top1_changed")
        if agreement is None or self.min_top1_agreement is None:
            return True
        return agreement >= self.min_top1_agreement or (changed is not None and changed <= 1)


def passes_gate(metrics: dict, max_accuracy_drop: float, min_cosine: float) -> bool:
    """Accuracy drop within budget when labels exist; otherwise mean cosine at or above the floor."""
    return Gate(max_accuracy_drop, min_cosine).passes(metrics)
