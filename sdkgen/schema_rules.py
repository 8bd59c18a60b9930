"""The manifest checks every SDK repeats, read from ``model-manifest.schema.json`` rather than copied by hand.

:func:`schema_rules` turns the schema's enums, numeric ranges and patterns into a typed value the templates render
as constants (Kotlin, Swift); the Python SDK validates against the bundled schema itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from compressor.bundle.manifest import SCHEMA_PATH


@dataclass(frozen=True)
class Range:
    """An inclusive numeric range, ``minimum``..``maximum`` (``None``: unbounded); ``exclusive_minimum`` for scales."""

    minimum: float | None
    maximum: float | None
    exclusive_minimum: bool = False


@dataclass(frozen=True)
class SchemaRules:
    """Enums, ranges and patterns of the manifest schema, by the manifest path they apply to."""

    schema_version: int
    enums: dict[str, tuple[str, ...]]
    ranges: dict[str, Range]
    patterns: dict[str, str]


def _range(node: dict) -> Range:
    if "exclusiveMinimum" in node:
        return Range(node["exclusiveMinimum"], node.get("maximum"), exclusive_minimum=True)
    return Range(node.get("minimum"), node.get("maximum"))


def _split_branch(schema: dict) -> dict:
    return next(branch for branch in schema["properties"]["split"]["oneOf"] if branch.get("type") == "object")


@lru_cache(maxsize=4)
def schema_rules(path: Path = SCHEMA_PATH) -> SchemaRules:
    """The rules of the manifest schema at ``path`` (default: the compressor's)."""
    schema = json.loads(Path(path).read_text())
    props = schema["properties"]
    policy = props["policy"]["properties"]
    tensor = schema["$defs"]["tensor"]["properties"]
    oip = schema["$defs"]["oip_tensor"]["properties"]
    quantization = next(b for b in tensor["quantization"]["oneOf"] if b.get("type") == "object")["properties"]
    enums = {
        "task": props["task"]["enum"],
        "policy/mode": policy["mode"]["enum"],
        "model/format": props["model"]["properties"]["format"]["enum"],
        "model/precision": props["model"]["properties"]["precision"]["enum"],
        "preprocessing/layout": props["preprocessing"]["properties"]["layout"]["enum"],
        "postprocessing/activation": props["postprocessing"]["properties"]["activation"]["enum"],
        "tensor/dtype": tensor["dtype"]["enum"],
        "oip_tensor/datatype": oip["datatype"]["enum"],
    }
    ranges = {
        "policy/confidence_threshold": _range(policy["confidence_threshold"]),
        "policy/timeout_ms": _range(policy["timeout_ms"]),
        "policy/retries": _range(policy["retries"]),
        "preprocessing/pixel_scale": _range(props["preprocessing"]["properties"]["pixel_scale"]),
        "preprocessing/channels": _range(props["preprocessing"]["properties"]["channels"]),
        "tensor/shape": _range(tensor["shape"]["items"]),
        "quantization/scale": _range(quantization["scale"]),
    }
    split = _split_branch(schema)["properties"]
    patterns = {
        "name": props["name"]["pattern"],
        "sha256": schema["$defs"]["sha256"]["pattern"],
        "file": schema["$defs"]["file"]["pattern"],
        "cloud/endpoint": props["cloud"]["properties"]["endpoint"]["pattern"],
        "cloud/model_name": props["cloud"]["properties"]["model_name"]["pattern"],
        "cloud/model_version": props["cloud"]["properties"]["model_version"]["pattern"],
        "split/tail/model_name": split["tail"]["properties"]["model_name"]["pattern"],
    }
    return SchemaRules(
        schema_version=props["schema_version"]["const"],
        enums={k: tuple(v) for k, v in enums.items()},
        ranges=ranges,
        patterns=patterns,
    )
