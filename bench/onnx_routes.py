"""How far each ONNX zoo model gets on the ONNX -> PyTorch -> TFLite route, with and without normalisation.

For every ONNX source in tests/model_zoo.py: onnx2torch on the graph as submitted; then
``compressor.onnx_normalize.normalize`` on the user's data (time, nodes before/after, max abs difference to
the original in onnxruntime); onnx2torch on the normalised graph with onnx2torch's own converters and with
``compressor.onnx_converters`` registered (max abs difference to onnxruntime, on the zoo data and, for graphs
whose weights are all one constant fill, again with seeded random weights so that the figure means something);
and litert-torch's fp32 conversion of the PyTorch module (max abs difference of the TFLite model in LiteRT to
onnxruntime). Each step is caught: the table says where each graph stops and why.

    .venv/bin/python bench/onnx_routes.py [--models ppocr-rec,onnx-resnet50] [--no-tflite] [--out build/onnx-routes]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

FREEZE = {"silero-vad-onnx": {"sr": np.array(16000, dtype=np.int64)}}  # branches on the sample rate


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:220]}"


def _onnx2torch():
    from compressor.onnx_torch import _torchvision_stand_in

    with _torchvision_stand_in():
        from onnx2torch import convert
    return convert


def _ort_outputs(model, sample):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: sample[i.name] for i in session.get_inputs()})


def _torch_diff(module, model, samples) -> float:
    import torch
    from model_zoo import _flatten

    worst = 0.0
    names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    for sample in samples:
        reference = _ort_outputs(model, sample)
        with torch.no_grad():
            got = _flatten(module(*[torch.from_numpy(np.ascontiguousarray(sample[n])) for n in names]))
        if len(got) != len(reference):
            raise ValueError(f"PyTorch module returns {len(got)} outputs, the graph {len(reference)}")
        worst = max(worst, *(float(np.abs(a - b.numpy()).max()) for a, b in zip(reference, got)))
    return worst


def _randomized(model, seed: int = 0):
    """The graph with each float initializer of 16+ elements replaced by seeded values of a similar scale."""
    import onnx
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for index, tensor in enumerate(copy.graph.initializer):
        array = numpy_helper.to_array(tensor)
        if array.dtype == np.float32 and array.size >= 16:
            fan_in = max(1, int(np.prod(array.shape[1:]))) if array.ndim > 1 else 1
            values = (
                rng.standard_normal(array.shape) / np.sqrt(fan_in)
                if array.ndim > 1
                else rng.uniform(0.5, 1.5, array.shape)
            )
            copy.graph.initializer[index].CopyFrom(numpy_helper.from_array(values.astype(np.float32), tensor.name))
    return copy


def _tflite_diff(module, model, samples, work: Path) -> tuple[float, float]:
    """litert-torch fp32 conversion of ``module``; max abs difference in LiteRT to onnxruntime, seconds."""
    import litert_torch
    import torch

    from compressor.native_output import captured
    from compressor.runtimes import TFLiteRunner

    litert_torch._config.config.show_progress = False
    names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    args = tuple(torch.from_numpy(np.ascontiguousarray(samples[0][n])) for n in names)
    start = time.perf_counter()
    with captured(work / "litert.log"):
        litert_torch.convert(module.eval(), args).export(str(work / "model.tflite"))
    seconds = time.perf_counter() - start
    runner = TFLiteRunner(work / "model.tflite")
    worst = 0.0
    for sample in samples:
        reference = _ort_outputs(model, sample)
        got = runner._invoke({n: sample[n] for n in names})
        worst = max(worst, *(float(np.abs(a - np.asarray(b).reshape(a.shape)).max()) for a, b in zip(reference, got)))
    return worst, seconds


def measure(name: str, cache: Path, tflite: bool) -> dict:
    """One model's row; never raises."""
    import onnx
    from model_zoo import build, feeds_for, one_sample

    from compressor.onnx_converters import register
    from compressor.onnx_normalize import normalize

    zoo_model = build(name, cache)
    original = onnx.load(str(zoo_model.model))
    feeds = feeds_for(zoo_model)
    freeze = FREEZE.get(name, {})
    data = {k: v for k, v in feeds.items() if k not in freeze}
    row: dict = {"model": name, "nodes": len(original.graph.node)}
    convert = _onnx2torch()
    try:
        convert(original)
        row["as_submitted"] = "ok"
    except Exception as exc:
        row["as_submitted"] = _reason(exc)
    try:
        normalised, report = normalize(original, data, freeze=freeze)
        row["normalize"] = {
            k: report[k] for k in ("nodes_after", "opset_before", "opset", "constants_materialized", "seconds")
        }
        row["normalize"]["max_abs_diff_ort"] = report["check"]["max_abs_diff"]
    except Exception as exc:
        row["normalize"] = _reason(exc)
        return row
    ranks = {i.name: len(i.type.tensor_type.shape.dim) for i in normalised.graph.input}
    samples = [
        {k: one_sample(v, i, ranks[k]) for k, v in data.items() if k in ranks}
        for i in range(min(4, len(next(iter(data.values())))))
    ]
    module = None
    for stage, extra in (("onnx2torch", False), ("onnx2torch+converters", True)):
        if extra:
            register()
        try:
            module = convert(normalised).eval()
            row[stage] = {"max_abs_diff_ort": _torch_diff(module, normalised, samples)}
            if "ConstantOfShape" in zoo_model.meta.get("export", ""):  # one constant per weight: try random ones
                shuffled = _randomized(normalised)
                row[stage]["random_weights_max_abs_diff_ort"] = _torch_diff(convert(shuffled).eval(), shuffled, samples)
        except Exception as exc:
            row[stage] = _reason(exc)
            module = None
    if module is not None and tflite:
        with tempfile.TemporaryDirectory() as work:
            try:
                diff, seconds = _tflite_diff(module, normalised, samples, Path(work))
                row["litert_torch_fp32"] = {"max_abs_diff_ort": diff, "seconds": round(seconds, 1)}
                if "ConstantOfShape" in zoo_model.meta.get("export", ""):
                    shuffled = _randomized(normalised)
                    diff, _ = _tflite_diff(convert(shuffled).eval(), shuffled, samples, Path(work))
                    row["litert_torch_fp32"]["random_weights_max_abs_diff_ort"] = diff
            except Exception as exc:
                row["litert_torch_fp32"] = _reason(exc)
    return row


def table(rows: list[dict]) -> str:
    def cell(value, key="max_abs_diff_ort"):
        if value is None:
            return ""
        if isinstance(value, str):
            return value.replace("|", "/")[:120]
        text = f"ok, {value[key]:.2g}"
        if "random_weights_max_abs_diff_ort" in value:
            text += f" (random weights {value['random_weights_max_abs_diff_ort']:.2g})"
        return text

    lines = [
        "| model | onnx2torch as submitted | normalize (nodes, opset, diff vs original) | onnx2torch | "
        "+ onnx_converters | litert-torch fp32 (diff vs ORT) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        n = r.get("normalize")
        norm = (
            n
            if isinstance(n, str)
            else f"{r['nodes']}→{n['nodes_after']}, {n['opset_before']}→{n['opset']}, {n['max_abs_diff_ort']:.2g}, {n['seconds']} s"
        )
        lines.append(
            f"| {r['model']} | {cell(r.get('as_submitted'))} | {norm} | {cell(r.get('onnx2torch'))} | "
            f"{cell(r.get('onnx2torch+converters'))} | {cell(r.get('litert_torch_fp32'))} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="comma-separated ONNX zoo names (default: every ONNX source)")
    parser.add_argument("--no-tflite", action="store_true", help="stop at PyTorch (skip litert-torch)")
    parser.add_argument("--cache", type=Path, default=ROOT / "build" / "zoo")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "onnx-routes")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.one:  # a worker: one model, its row as JSON on the last line
        print(json.dumps(measure(args.one, args.cache, not args.no_tflite), default=float))
        return 0
    from model_zoo import build, names

    chosen = (
        args.models.split(",") if args.models else [n for n in names() if build(n, args.cache).model.suffix == ".onnx"]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in chosen:  # one process each: a converter crash costs one row
        command = [
            sys.executable,
            __file__,
            "--one",
            name,
            "--cache",
            str(args.cache),
            *(["--no-tflite"] if args.no_tflite else []),
        ]
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        try:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        except (IndexError, json.JSONDecodeError):
            rows.append(
                {
                    "model": name,
                    "nodes": 0,
                    "normalize": f"worker died (status {done.returncode}): {done.stderr[-200:]}",
                }
            )
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1, default=float) + "\n")
    text = table(rows)
    (args.out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
