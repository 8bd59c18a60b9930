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

from compressor.bundle.manifest import SCHEMA_PATH
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


def _render(platform: str, dest: Path) -> list[Path]:
    manifest = json.loads((GOLDEN / "model-manifest.json").read_text())
    spec = SdkSpec(
        name="DigitsClassifier", package="com.example.digits", platforms=(platform,), labels=tuple(manifest["labels"])
    )
    ctx = dataclasses.replace(context_for(spec, manifest), versions=FIXED_VERSIONS)
    dest.mkdir(parents=True)
    model = dest.parent / f"{dest.name}.tflite"
    model.write_bytes(b"model")
    assets = {"model": model, "manifest": GOLDEN / "model-manifest.json", "schema": SCHEMA_PATH, "proto": PROTO}
    return render_platform(platform, ctx, assets, dest)


@pytest.mark.parametrize("platform", platforms.names())
def test_rendered_files_match_golden(platform, tmp_path):
    """Every template-rendered file equals its golden copy. With EDGEFORGE_UPDATE_GOLDEN=1 the goldens are rewritten
    from one rendering first, and a second, independent rendering is then compared with them, so the update run
    still fails on output that is not reproducible."""
    golden = GOLDEN / platform
    if os.environ.get("EDGEFORGE_UPDATE_GOLDEN"):
        first = _render(platform, tmp_path / "first")
        shutil.rmtree(golden, ignore_errors=True)
        for rel in first:
            (golden / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp_path / "first" / rel, golden / rel)
    rendered = _render(platform, tmp_path / platform)
    expected = sorted(p.relative_to(golden) for p in golden.rglob("*") if p.is_file())
    assert expected, f"no golden files for {platform}: regenerate them with EDGEFORGE_UPDATE_GOLDEN=1"
    assert sorted(rendered) == expected
    for rel in rendered:
        assert (tmp_path / platform / rel).read_text() == (golden / rel).read_text(), (
            f"{platform}/{rel} differs from golden"
        )
