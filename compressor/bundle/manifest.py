"""``model-manifest.json``: the one description of a compiled model that the server and every SDK read.

The JSON Schema lives beside this module (``schemas/model-manifest.schema.json``);
:func:`validate_manifest` applies it plus the checks a schema cannot express
(labels count against the classifier's output width).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from compressor.errors import InvalidInputError

MANIFEST_SCHEMA_VERSION = 1
MANIFEST_FILE = "model-manifest.json"
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "model-manifest.schema.json"
CLOUD_MODEL = "cloud/model.onnx"
TASKS = ("classification", "embedding", "regression", "raw")
MODES = ("edge", "split", "cloud")
OIP_DATATYPES = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
}


@functools.cache
def manifest_schema() -> dict:
    """The manifest's JSON Schema as a dict."""
    return json.loads(SCHEMA_PATH.read_text())


def oip_tensor(spec: dict) -> dict:
    """An Open Inference Protocol tensor description (name, datatype, shape) for a ``name/shape/dtype`` dict."""
    try:
        datatype = OIP_DATATYPES[spec["dtype"]]
    except KeyError:
        raise InvalidInputError(
            f"tensor {spec['name']!r} has dtype {spec['dtype']!r}, which the Open Inference Protocol cannot carry; "
            f"supported: {', '.join(OIP_DATATYPES)}"
        ) from None
    return {"name": spec["name"], "datatype": datatype, "shape": list(spec["shape"])}


def validate_manifest(manifest: dict, where: str = "model manifest") -> dict:
    """Return ``manifest`` unchanged when it satisfies the schema and the labels check; raise otherwise.

    Raises :class:`InvalidInputError` naming the failing field, what it holds and what is allowed.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(manifest_schema())
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        field = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise InvalidInputError(
            f"{where} is invalid at {field}: {error.message}. The schema is {SCHEMA_PATH.name} "
            f"(schema_version {MANIFEST_SCHEMA_VERSION}); rebuild the SDK with `sdkgen build` to get a valid one"
        )
    check_labels(manifest.get("labels"), manifest["outputs"], manifest["task"])
    return manifest


def check_labels(labels: list[str] | None, outputs: list[dict], task: str) -> None:
    """Raise :class:`InvalidInputError` unless a classifier's labels match the width of its first output."""
    if task != "classification":
        return
    width = outputs[0]["shape"][-1]
    if labels is None or (width is not None and len(labels) != width):
        got = "no labels" if labels is None else f"{len(labels)} labels"
        raise InvalidInputError(
            f"the classifier's output {outputs[0]['name']!r} has {width} classes but got {got}; pass a labels file "
            f"with exactly {width} non-empty lines (one class name per line, in output order)"
        )


def load_manifest(path: str | Path) -> dict:
    """Read and validate a ``model-manifest.json``."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInputError(
            f"model manifest {path} does not exist; `sdkgen build` writes one next to the model"
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"model manifest {path} is not valid JSON: {exc}") from None
    return validate_manifest(manifest, where=f"model manifest {path}")


def write_manifest(manifest: dict, path: str | Path) -> None:
    """Validate ``manifest`` and write it as stable, indented JSON."""
    validate_manifest(manifest)
    Path(path).write_text(json.dumps(manifest, indent=2) + "\n")
