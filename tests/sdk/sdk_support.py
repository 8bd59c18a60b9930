"""Helpers for the SDK tests: the shared fallback vectors as complete cases, and the suite's ``require``."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "fallback.json"
MODEL_BYTES = b"scripted edge model"


from support import require  # noqa: E402,F401 - the suite-wide helper


def fallback_vectors() -> dict:
    return json.loads(VECTORS.read_text())


def cases(base_manifest: dict) -> list[dict]:
    """One case per vector: ``manifest`` (valid against the schema), ``edge``, ``cloud``, ``expect``, ``name``."""
    doc = json.loads(VECTORS.read_text())
    result = []
    for vector in doc["vectors"]:
        manifest = copy.deepcopy(base_manifest)
        manifest["task"] = vector["task"]
        manifest["labels"] = doc["labels"] if vector["task"] == "classification" else None
        manifest["outputs"] = [{"name": "probs", "shape": [1, len(doc["labels"])], "dtype": "float32",
                                "layout": None, "quantization": None}]
        manifest["postprocessing"] = {"activation": "none"}
        manifest["policy"] = vector["policy"]
        ok = vector["edge"]["integrity"] == "ok"
        manifest["model"]["sha256"] = hashlib.sha256(MODEL_BYTES if ok else b"another model").hexdigest()
        confidence = vector["edge"]["confidence"]
        result.append({"name": vector["name"], "manifest": manifest, "edge": vector["edge"], "cloud": vector["cloud"],
                       "edge_outputs": [confidence, 1 - confidence], "cloud_outputs": doc["cloud_outputs"],
                       "expect": vector["expect"]})
    return result


def mismatches(actual: dict, expect: dict) -> dict:
    """Expected keys whose actual value differs (floats compared within 1e-6: float32 outputs)."""
    wrong = {}
    for key, want in expect.items():
        got = actual.get(key)
        if isinstance(want, float):
            same = isinstance(got, (int, float)) and abs(got - want) < 1e-6
        else:
            same = got == want
        if not same:
            wrong[key] = {"expected": want, "actual": got}
    return wrong
