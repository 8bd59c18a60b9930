"""Max abs difference of onnx2tf's float32 .tflite files (LiteRT) to onnxruntime on the zoo data.

Reads build/onnx2tf/summary.txt (bench/probes/onnx2tf_run.sh); inputs are transposed to NHWC where onnx2tf made
them so, outputs matched by size (and transposed back from NHWC).

    PYTHONPATH=$PWD .venv/bin/python bench/probes/onnx2tf_compare.py
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def _diff(reference: np.ndarray, candidates: list[np.ndarray]) -> float:
    best = float("nan")
    for got in (g for g in candidates if g.size == reference.size):
        if got.shape != reference.shape and got.ndim == 4:
            got = np.transpose(got, (0, 3, 1, 2))
        value = float(np.abs(reference - got.reshape(reference.shape)).max())
        best = value if np.isnan(best) else min(best, value)
    return best


def compare(name: str, variant: str, here: Path) -> float:
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter
    from model_zoo import build, feeds_for, one_sample

    tflite = sorted(glob.glob(str(here / f"out-{variant}" / name / "*_float32.tflite")))[0]
    zoo_model = build(name, ROOT / "build" / "zoo")
    feeds = feeds_for(zoo_model)
    session = ort.InferenceSession(str(zoo_model.model), providers=["CPUExecutionProvider"])
    ranks = {i.name: len(i.shape) for i in session.get_inputs()}
    interpreter = Interpreter(model_path=tflite)
    interpreter.allocate_tensors()
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    worst = 0.0
    for index in range(min(4, len(next(iter(feeds.values()))))):
        sample = {k: one_sample(v, index, ranks[k]) for k, v in feeds.items() if k in ranks}
        reference = session.run(None, sample)
        for detail, value in zip(inputs, sample.values()):
            if tuple(detail["shape"]) != value.shape and value.ndim == 4:
                value = np.transpose(value, (0, 2, 3, 1))
            interpreter.set_tensor(detail["index"], np.ascontiguousarray(value, dtype=detail["dtype"]))
        interpreter.invoke()
        got = [interpreter.get_tensor(d["index"]) for d in outputs]
        worst = max(worst, *(_diff(r, got) for r in reference))
    return worst


def main() -> None:
    here = ROOT / "build" / "onnx2tf"
    for line in (here / "summary.txt").read_text().splitlines():
        name, variant, status = line.split()[:3]
        if status == "status=0":
            print(f"{name} {variant}: max abs difference to onnxruntime {compare(name, variant, here):.3g}")


if __name__ == "__main__":
    main()
