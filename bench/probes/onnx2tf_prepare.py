"""Inputs of bench/probes/onnx2tf_run.sh: normalised zoo graphs, and onnx2tf's sample data made from zoo photos."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
GRAPHS = (
    "silero-vad-sequence",
    "onnx-inception-v1",
    "ppocr-rec",
    "ppocr-cls",
    "ppocr-det",
    "onnx-resnet50",
    "silero-vad-onnx",
)
FREEZE = {"silero-vad-onnx": {"sr": np.array(16000)}}


def main() -> None:
    import onnx
    from model_zoo import build, feeds_for, photos

    from compressor.onnx_normalize import normalize

    out = ROOT / "build" / "onnx2tf"
    (out / "normalized").mkdir(parents=True, exist_ok=True)
    sample = photos(128, count=20, layout="NHWC", normalize="none").astype(np.float32)
    np.save(out / "calibration_image_sample_data_20x128x128x3_float32.npy", sample)
    for name in GRAPHS:
        zoo_model = build(name, ROOT / "build" / "zoo")
        freeze = FREEZE.get(name, {})
        feeds = {k: v for k, v in feeds_for(zoo_model).items() if k not in freeze}
        normalised, _ = normalize(onnx.load(str(zoo_model.model)), feeds, freeze=freeze)
        onnx.save(normalised, str(out / "normalized" / f"{name}.onnx"))
        print(name, "normalised")


if __name__ == "__main__":
    main()
