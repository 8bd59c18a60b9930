"""Helpers for the SDK tests: the shared fallback vectors as complete cases, and the suite's ``require``."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "fallback.json"
MODEL_BYTES = b"scripted edge model"
HEAD_BYTES = b"scripted head model"


from support import require  # noqa: E402,F401 - the suite-wide helper


def fallback_vectors() -> dict:
    return json.loads(VECTORS.read_text())


DEFAULT_INPUTS = [{"name": "x", "shape": [1, 2], "dtype": "float32", "layout": None, "quantization": None}]
DEFAULT_GIVEN = [{"shape": [1, 2], "values": [0.0, 0.0]}]


def quantize_cases() -> list[dict]:
    """The shared quantizer cases: ``dtype``, ``scale``, ``zero_point``, ``values`` and the ``expect``-ed levels."""
    return json.loads(VECTORS.read_text())["quantize"]["cases"]


def cases(base_manifest: dict) -> list[dict]:
    """One case per vector: ``manifest`` (schema-valid unless ``expect`` names a ``manifest_error``), ``given`` (the
    caller's inputs: shape and values each), ``edge``, ``cloud``, ``expect``, ``name``; split vectors also ``head``
    and ``tail`` (outcomes), ``head_outputs`` and ``tail_outputs``."""
    doc = json.loads(VECTORS.read_text())
    result = []
    for vector in doc["vectors"]:
        manifest = copy.deepcopy(base_manifest)
        manifest["task"] = vector["task"]
        manifest["inputs"] = vector.get("inputs", DEFAULT_INPUTS)
        manifest["cloud"]["inputs"] = [_oip(t) for t in manifest["inputs"]]
        manifest["labels"] = doc["labels"] if vector["task"] == "classification" else None
        manifest["outputs"] = [
            {
                "name": "probs",
                "shape": [1, len(doc["labels"])],
                "dtype": "float32",
                "layout": None,
                "quantization": None,
            }
        ]
        manifest["postprocessing"] = {"activation": "none"}
        manifest["policy"] = vector["policy"]
        ok = vector["edge"]["integrity"] == "ok"
        manifest["model"]["sha256"] = hashlib.sha256(MODEL_BYTES if ok else b"another model").hexdigest()
        confidence = vector["edge"]["confidence"]
        case = {
            "name": vector["name"],
            "manifest": manifest,
            "given": vector.get("given", DEFAULT_GIVEN),
            "edge": vector["edge"],
            "cloud": vector["cloud"],
            "edge_outputs": [confidence, 1 - confidence],
            "cloud_outputs": doc["cloud_outputs"],
            "expect": vector["expect"],
        }
        if "head" in vector:
            manifest["split"] = _split_section(manifest, doc["split"], vector["head"]["integrity"] == "ok")
            case.update(
                head=vector["head"],
                tail=vector["tail"],
                head_outputs=doc["split"]["head_outputs"],
                tail_outputs=doc["split"]["tail_outputs"],
            )
        result.append(case)
    return result


def _oip(tensor: dict) -> dict:
    datatype = {"float32": "FP32", "int32": "INT32", "int64": "INT64", "int8": "INT8", "uint8": "UINT8"}[
        tensor["dtype"]
    ]
    return {"name": tensor["name"], "datatype": datatype, "shape": tensor["shape"]}


def _split_section(manifest: dict, split: dict, head_ok: bool) -> dict:
    """A schema-valid split section for the scripted head (model input 0 -> the vector's head outputs) and tail."""
    width = len(split["head_outputs"])
    middle = {"name": "intermediate", "shape": [1, width], "dtype": "float32", "layout": None, "quantization": None}
    return {
        "cut": "scripted",
        "head": {
            "file": "split/head.tflite",
            "sha256": hashlib.sha256(HEAD_BYTES if head_ok else b"another head").hexdigest(),
            "format": "tflite",
            "precision": "fp32",
            "size_bytes": len(HEAD_BYTES),
            "inputs": manifest["inputs"][:1],
            "outputs": [middle],
        },
        "head_inputs": [0],
        "side_inputs": [],
        "intermediate": {**middle, "dtype": "int8", "quantization": split["quantization"]},
        "tail": {
            "model_name": "scripted-tail",
            "model_version": "1",
            "file": "split/tail.onnx",
            "sha256": hashlib.sha256(b"scripted tail").hexdigest(),
            "inputs": [{"name": "intermediate", "datatype": "INT8", "shape": [1, width]}],
            "outputs": [{"name": "probs", "datatype": "FP32", "shape": [1, 2]}],
        },
        "plan": {},
    }


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
