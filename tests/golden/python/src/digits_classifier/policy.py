"""The fallback policy: run on the device, ask the cloud when the manifest's policy says so.

One decision table for every EdgeForge SDK (see the manifest's ``policy``):

* the model's sha256 must match the manifest, else it is never loaded (``model_integrity_failed``);
* a model that fails to load (``model_load_failed``) or run (``edge_run_failed``) goes to the cloud;
* a classifier whose top probability is below ``confidence_threshold`` goes to the cloud (``low_confidence``);
* mode ``cloud`` asks the cloud first (``mode_cloud``);
* mode ``split`` runs the head on the device, quantizes its output to int8 with the manifest's scale and zero
  point and asks the tail model; when that fails (``split_`` + the head's or the tail call's problem) it asks
  the cloud for the whole model, then falls back to the whole model on the device;
* a cloud that is unreachable, times out or fails after ``retries`` retries yields the edge result marked
  ``low_confidence`` when there is one, else :class:`PredictionError`;
* inputs are checked against the manifest before anything runs (:class:`~digits_classifier.tensors.InvalidInput`);
  an exception the engine or client does not document counts as a failed run or the cloud error ``error``; a
  cancelled call (:class:`Cancelled`) stops the prediction: it is neither retried nor answered from elsewhere.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np

from digits_classifier.tensors import check_inputs, quantize


class PredictionError(RuntimeError):
    """Neither the device nor the cloud produced a result; the message says why for each."""


class Cancelled(Exception):
    """The call was cancelled (the caller's deadline or cancellation); the prediction stops, nothing is retried."""


class CloudFailure(Exception):
    """A cloud call that did not answer; ``kind`` is ``unavailable``, ``timeout`` or ``error``."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


class EdgeEngine(Protocol):
    def run(self, inputs: list) -> list:
        """Run one sample (arrays with a batch axis of 1) and return float outputs."""


class CloudClient(Protocol):
    def infer(self, inputs: list, timeout_s: float) -> list:
        """Run one sample remotely; raise :class:`CloudFailure` when no answer comes back."""


@dataclass(frozen=True)
class SplitParts:
    """The device half of split mode: the head model's bytes, how to open them, and the client of the tail model."""

    head_bytes: bytes
    open_head: Callable[[bytes], EdgeEngine]
    tail: Optional[CloudClient]


@dataclass(frozen=True)
class Prediction:
    outputs: list
    source: str
    latency_ms: float
    label: Optional[str] = None
    confidence: Optional[float] = None
    fallback_reason: Optional[str] = None
    low_confidence: bool = False
    cloud_error: Optional[str] = None


class _Serialized:
    """An engine whose runs take turns: LiteRT's interpreter is not safe to run from two threads at once."""

    def __init__(self, engine: EdgeEngine) -> None:
        self.engine, self.lock = engine, threading.Lock()

    def run(self, inputs: list) -> list:
        with self.lock:
            return self.engine.run(inputs)


class FallbackPredictor:
    """Applies the manifest's policy over an edge engine and an optional cloud client; safe to call from threads."""

    def __init__(self, manifest: dict, model_bytes: bytes, open_engine: Callable[[bytes], EdgeEngine],
                 cloud: Optional[CloudClient], split: Optional[SplitParts] = None) -> None:
        self.manifest = manifest
        self.policy = manifest["policy"]
        self.cloud = cloud
        self.engine, self.edge_problem = _open_checked(model_bytes, manifest["model"]["sha256"], open_engine)
        self.split = manifest["split"] if self.policy["mode"] == "split" else None
        self.head, self.head_problem, self.tail = None, "not_configured", None
        if self.split is not None and split is not None:
            self.head, self.head_problem = _open_checked(split.head_bytes, self.split["head"]["sha256"], split.open_head)
            self.tail = split.tail

    def predict(self, given: list) -> Prediction:
        """Predict one sample: one array per manifest input; raises ``InvalidInput``, :class:`PredictionError` or
        :class:`Cancelled`."""
        inputs = check_inputs(self.manifest["inputs"], given)
        start = time.perf_counter()
        mode = self.policy["mode"]
        edge = None
        if mode == "split":
            outputs, reason = self._split(inputs)
            if outputs is not None:
                return self._result(outputs, "split", start)
        elif mode == "cloud":
            reason = "mode_cloud"
        else:
            edge, reason = self._edge(inputs)
            if edge is not None and not self._low(edge):
                return self._result(edge, "edge", start)
            reason = reason or "low_confidence"
        outputs, cloud_error = self._call(self.cloud, inputs)
        if outputs is not None:
            return self._result(outputs, "cloud", start, fallback_reason=reason)
        edge_problem = reason
        if edge is None and mode != "edge":
            edge, edge_problem = self._edge(inputs)
        if edge is not None:
            return self._result(edge, "edge", start, fallback_reason=reason, low_confidence=True, cloud_error=cloud_error)
        raise PredictionError(f"no result: on the device {edge_problem}, and the cloud {cloud_error}")

    def _split(self, inputs: list):
        """Head here, int8 over the wire, tail there; (outputs, None) or (None, ``split_<problem>``)."""
        if self.head is None:
            return None, f"split_{self.head_problem}"
        try:
            [middle] = self.head.run([inputs[i] for i in self.split["head_inputs"]])
        except Exception:  # noqa: BLE001
            return None, "split_edge_run_failed"
        q = self.split["intermediate"]["quantization"]
        sent = quantize(middle, q["scale"], q["zero_point"], "int8")
        outputs, error = self._call(self.tail, [sent, *(inputs[i] for i in self.split["side_inputs"])])
        return outputs, None if outputs is not None else f"split_{error}"

    def _edge(self, inputs: list):
        if self.engine is None:
            return None, self.edge_problem
        try:
            return [np.asarray(o, dtype=np.float32) for o in self.engine.run(inputs)], None
        except Exception:  # noqa: BLE001
            return None, "edge_run_failed"

    def _call(self, client: Optional[CloudClient], inputs: list):
        if client is None:
            return None, "not_configured"
        error = "error"
        for _ in range(1 + self.policy["retries"]):
            try:
                return [np.asarray(o, dtype=np.float32) for o in client.infer(inputs, self.policy["timeout_ms"] / 1000)], None
            except Cancelled:
                raise
            except CloudFailure as failure:
                error = failure.kind
            except Exception:  # noqa: BLE001 - a client bug is the cloud not answering, not the app's crash
                error = "error"
        return None, error

    def _low(self, outputs: list) -> bool:
        threshold = self.policy["confidence_threshold"]
        return self.manifest["task"] == "classification" and threshold is not None and top_class(self.manifest, outputs)[1] < threshold

    def _result(self, outputs: list, source: str, start: float, **fallback) -> Prediction:
        label, confidence = top_class(self.manifest, outputs) if self.manifest["task"] == "classification" else (None, None)
        latency_ms = (time.perf_counter() - start) * 1e3
        return Prediction(outputs, source, latency_ms, label, confidence, **fallback)


def _open_checked(model_bytes: bytes, sha256: str, open_engine: Callable[[bytes], EdgeEngine]):
    """(engine, None), or (None, ``model_integrity_failed`` / ``model_load_failed``): a mismatch is never loaded."""
    if hashlib.sha256(model_bytes).hexdigest() != sha256:
        return None, "model_integrity_failed"
    try:
        return _Serialized(open_engine(model_bytes)), None
    except Exception:  # noqa: BLE001 - any runtime failure means: not on this device
        return None, "model_load_failed"


def probabilities(manifest: dict, outputs: list) -> np.ndarray:
    """Class probabilities of one sample from output 0, after the manifest's activation."""
    scores = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
    if manifest["postprocessing"]["activation"] == "softmax":
        scores = np.exp(scores - scores.max())
        scores = scores / scores.sum()
    return scores


def top_class(manifest: dict, outputs: list):
    """(label, probability) of the most likely class."""
    probs = probabilities(manifest, outputs)
    best = int(np.argmax(probs))
    return manifest["labels"][best], float(probs[best])
