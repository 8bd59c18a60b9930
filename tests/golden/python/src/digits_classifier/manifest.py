"""The bundled ``model-manifest.json``, validated against its JSON Schema on load."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema

SCHEMA_VERSION = 1


class ManifestError(ValueError):
    """The manifest is missing, malformed or fails the schema; the message names the field (also as ``field``)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def validate(manifest: dict) -> dict:
    """Return ``manifest`` when it satisfies the bundled schema and the labels check; raise :class:`ManifestError`."""
    schema = json.loads(resources.files(__package__).joinpath("assets/model-manifest.schema.json").read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(manifest))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        field = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ManifestError(f"model-manifest.json is invalid at {field}: {error.message} (schema_version {SCHEMA_VERSION})", field)
    if manifest["task"] == "classification":
        width = manifest["outputs"][0]["shape"][-1]
        if width is not None and len(manifest["labels"]) != width:
            raise ManifestError(f"model-manifest.json lists {len(manifest['labels'])} labels for {width} classes", "labels")
    return manifest


def load_bundled() -> dict:
    """The manifest shipped inside this package."""
    text = resources.files(__package__).joinpath("assets/model-manifest.json").read_text()
    try:
        return validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"model-manifest.json is not valid JSON: {exc}") from None
