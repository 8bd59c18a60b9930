"""CER and per-position top-1 agreement of every pixel-8 candidate of the normalised PP-OCRv4 recogniser (F13).

Builds ``pixel-8`` from ``compressor.onnx_normalize``'s output (with ``compressor.onnx_converters`` registered,
as the pipeline will once they are wired in), keeps the work folder, and scores each candidate in LiteRT.

    .venv/bin/python bench/probes/recogniser_cer.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests")]


def main() -> None:
    from coverage import normalised_source
    from model_zoo import build, feeds_for, reference_outputs

    from compressor import CompressOptions, load_source, run_build
    from compressor.errors import EdgeForgeError
    from compressor.runtimes import open_artifact

    zoo_model = build("ppocr-rec", ROOT / "build" / "zoo")
    feeds = feeds_for(zoo_model)
    reference = reference_outputs(zoo_model)[0]
    print(f"original CER {zoo_model.task_metric([reference], feeds):.2f} %")
    work = ROOT / "build" / "probes" / "recogniser"
    work.mkdir(parents=True, exist_ok=True)
    source, data = load_source(normalised_source(zoo_model).model, data=zoo_model.data)
    try:
        run_build(source, data, "pixel-8", CompressOptions(latency_repeats=2, latency_warmup=1), workdir=work)
    except EdgeForgeError as exc:
        print(f"build: {type(exc).__name__}: {str(exc)[:200]}")
    for path in sorted((work / "candidates").glob("*.tflite")):
        out = open_artifact(path, "tflite").run(feeds)[0]
        a, b = reference.reshape(len(reference), -1), out.reshape(len(out), -1)
        cosine = float(np.mean((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))
        agreement = float((out.argmax(-1) == reference.argmax(-1)).mean())
        cer = zoo_model.task_metric([out], feeds)
        print(f"{path.name}: CER {cer:.2f} %, per-position top-1 agreement {agreement:.4f}, mean cosine {cosine:.4f}")


if __name__ == "__main__":
    main()
