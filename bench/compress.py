"""Every precision x format for the digits CNN and a small transformer, measured side by side in one run.

For each artifact: size ratio vs the fp32 source file, accuracy drop on held-out
digits, and host latency ratios vs PyTorch eager fp32 and vs the plain converter
output (litert-torch / torch.onnx.export fp32, no EdgeForge steps). All latencies
are single-threaded p50 over interleaved rounds on this machine, in this run.
Also prints the pixel-8 selection for the digits CNN (the issue's done criterion).

    .venv/bin/python bench/compress.py [--repeats 300]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples" / "digits")]

from compressor import CompressOptions, load_source, run_build  # noqa: E402
from compressor.runtimes import TorchRunner, interleaved_p50, open_artifact  # noqa: E402


def _model_files(work: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (model.pt2, data.npz); the digits example as `make demo` builds it, the transformer trained here."""
    from model import load_digits_split, train  # examples/digits/model.py

    digits = ROOT / "examples" / "digits"
    if not (digits / "model.pt2").exists():
        raise SystemExit("run `make demo` (or python examples/digits/train.py) first to build the digits example")
    spec = importlib.util.spec_from_file_location(
        "tiny_transformer", ROOT / "examples" / "tiny_transformer" / "model.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x_train, y_train, x_test, y_test = load_digits_split()
    transformer = train(module.TinyTransformer(), x_train, y_train, epochs=40)
    program = torch.export.export(
        transformer,
        (torch.from_numpy(x_test[:2]),),
        dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=1024)}},
    )
    torch.export.save(program, work / "transformer.pt2")
    np.savez(work / "transformer.npz", x=x_test, labels=y_test)
    return {
        "digits-cnn": (digits / "model.pt2", digits / "data.npz"),
        "tiny-transformer": (work / "transformer.pt2", work / "transformer.npz"),
    }


def bench_model(name: str, model: Path, data: Path, repeats: int) -> list[str]:
    source, samples = load_source(model, data=data)
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    state = run_build(source, samples, "host", CompressOptions(latency_repeats=5), workdir=work)
    sample = state.sample()
    runners = {
        "eager": TorchRunner(source.to_torch(), source.inputs),
        "plain tflite": open_artifact(work / "fp32-base.tflite", "tflite"),
        "plain onnx": open_artifact(work / "fp32-base.onnx", "onnx"),
    }
    for c in state.candidates:
        runners[c.name] = open_artifact(c.path, c.format.value)
    torch.set_num_threads(1)
    p50 = interleaved_p50(runners, sample, rounds=5, warmup=5, repeats=repeats // 5)
    rows = [
        f"{name}: source {source.size_bytes / 1024:.1f} KB, {source.params:,} params, {state.macs:,} MACs; "
        f"eager fp32 {p50['eager']:.3f} ms, plain tflite {p50['plain tflite']:.3f} ms, "
        f"plain onnx {p50['plain onnx']:.3f} ms"
    ]
    header = (
        f"{'artifact':<22}{'size KB':>9}{'size x':>8}{'acc %':>8}{'drop pt':>9}{'cos mean':>10}{'p50 ms':>9}"
        f"{'vs eager':>10}{'vs plain':>10}"
    )
    rows += [header, "-" * len(header)]
    for c in state.candidates:
        m = c.metrics
        plain = p50[f"plain {c.format.value}"]
        rows.append(
            f"{c.name:<22}{c.size_bytes / 1024:>9.1f}{c.size_bytes / source.size_bytes:>8.3f}"
            f"{100 * m['accuracy']:>8.2f}"
            f"{m['accuracy_drop']:>9.2f}{m['cosine_mean']:>10.4f}{p50[c.name]:>9.3f}"
            f"{p50[c.name] / p50['eager']:>10.2f}{p50[c.name] / plain:>10.2f}"
        )
    return rows


def pixel8_selection(model: Path, data: Path) -> str:
    source, samples = load_source(model, data=data)
    state = run_build(source, samples, "pixel-8", CompressOptions())
    chosen = state.candidates[state.selected[next(iter(state.selected))]]
    return (
        f"digits-cnn on pixel-8: selected {chosen.name}, size {chosen.size_bytes / source.size_bytes:.3f} x source, "
        f"accuracy drop {chosen.metrics['accuracy_drop']:.2f} pt, host p50 {chosen.host_latency_ms['p50']:.3f} ms, "
        f"estimated device {chosen.estimated_device_latency_ms:.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        files = _model_files(Path(work))
        for name, (model, data) in files.items():
            print("\n".join(bench_model(name, model, data, args.repeats)), end="\n\n", flush=True)
        print(pixel8_selection(*files["digits-cnn"]))


if __name__ == "__main__":
    main()
