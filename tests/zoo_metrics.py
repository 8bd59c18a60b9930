"""Task metrics of the model zoo: each scores a model's outputs on its zoo data against the ground truth.

Signature: ``metric(outputs, inputs, meta) -> float``; ``meta`` is the model's meta.json (ground truth texts,
voiced labels, its folder).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from zoo_inputs import RAPIDOCR_MODELS


def character_error_rate(predicted: list[str], truth: list[str]) -> float:
    """Edit distance summed over lines / characters of the truth, in percent."""
    errors = sum(_edit_distance(p, t) for p, t in zip(predicted, truth))
    return 100.0 * errors / max(1, sum(len(t) for t in truth))


def _edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def ctc_decode(probs: np.ndarray) -> list[str]:
    """PP-OCR recogniser outputs -> text, with rapidocr's own CTC decoder and the model's character dictionary."""
    import onnx
    from rapidocr_onnxruntime.ch_ppocr_rec.utils import CTCLabelDecode

    model = onnx.load(str(RAPIDOCR_MODELS / "ch_PP-OCRv4_rec_infer.onnx"), load_external_data=False)
    characters = next(p.value for p in model.metadata_props if p.key == "character").splitlines()
    return [text for text, _score in CTCLabelDecode(character=characters)(probs)]


def _cer(outputs, _inputs, meta) -> float:
    return character_error_rate(ctc_decode(outputs[0]), meta["texts"])


def _det_iou(outputs, _inputs, meta) -> float:
    """Pixel IoU (percent) of the probability map above DB's 0.3 threshold with the ground-truth text boxes."""
    truth = np.load(Path(meta["folder"]) / "text_mask.npy")
    predicted = outputs[0][:, 0] > 0.3
    inter, union = (predicted & truth).sum(), (predicted | truth).sum()
    return 100.0 * inter / max(1, union)


def _vad_accuracy(outputs, _inputs, meta) -> float:
    speech = np.asarray(outputs[0]).reshape(len(meta["voiced"]), -1)[:, 0] > 0.5
    return 100.0 * float((speech == np.asarray(meta["voiced"], dtype=bool)).mean())


def _paraphrase_retrieval(outputs, inputs, _meta) -> float:
    """Percent of sentences whose nearest neighbour (mean-pooled, masked embeddings) is its paraphrase."""
    hidden = outputs[0]
    mask = inputs["attention_mask"][..., None].astype(np.float64)
    pooled = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    similarity = pooled @ pooled.T
    np.fill_diagonal(similarity, -np.inf)
    partner = np.arange(len(pooled)) ^ 1
    return 100.0 * float((similarity.argmax(axis=1) == partner).mean())


METRICS: dict[str, tuple[str, Callable]] = {
    "text-recognition": ("CER %", _cer),
    "text-detection": ("text IoU %", _det_iou),
    "vad": ("VAD accuracy %", _vad_accuracy),
    "embedding": ("paraphrase top-1 %", _paraphrase_retrieval),
}
