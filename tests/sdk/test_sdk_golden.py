"""Golden files: every template-rendered file of every platform, from a fixed manifest.

Regenerate on purpose with ``EDGEFORGE_UPDATE_GOLDEN=1 pytest tests/sdk/test_sdk_golden.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from sdkgen.platforms import platforms
from sdkgen.render import PROTO, context_for, render_platform
from sdkgen.spec import SdkSpec

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FIXED_VERSIONS = {
    "grpcio": "1.85.3",
    "protobuf": "7.36.2",
    "numpy": "2.0.0",
    "ai_edge_litert": "2.3.0",
    "onnxruntime": "1.32.0",
    "jsonschema": "4.26.0",
    "edgeforge": "0.1.0",
}


@pytest.mark.parametrize("platform", platforms.names())
def test_rendered_files_match_golden(platform, tmp_path):
    manifest = json.loads((GOLDEN / "model-manifest.json").read_text())
    spec = SdkSpec(
        name="DigitsClassifier", package="com.example.digits", platforms=(platform,), labels=tuple(manifest["labels"])
    )
    ctx = dataclasses.replace(context_for(spec, manifest), versions=FIXED_VERSIONS)
    model = tmp_path / "model.tflite"
    model.write_bytes(b"model")
    assets = {
        "model": model,
        "manifest": GOLDEN / "model-manifest.json",
        "schema": GOLDEN / "model-manifest.json",
        "proto": PROTO,
    }
    rendered = render_platform(platform, ctx, assets, tmp_path / platform)
    golden = GOLDEN / platform
    if os.environ.get("EDGEFORGE_UPDATE_GOLDEN"):
        shutil.rmtree(golden, ignore_errors=True)
        for rel in rendered:
            (golden / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp_path / platform / rel, golden / rel)
    expected = sorted(p.relative_to(golden) for p in golden.rglob("*") if p.is_file())
    assert sorted(rendered) == expected
    for rel in rendered:
        assert (tmp_path / platform / rel).read_text() == (golden / rel).read_text(), (
            f"{platform}/{rel} differs from golden"
        )
