"""Pruning + distillation + quantization on the digits CNN, side by side in one run.

Rows (all TFLite, the artifacts EdgeForge builds for the host profile):
original fp32; int8 only; structured 50% + distillation + int8; unstructured
80% + int8; unstructured 80% + weight clustering (16 shared values per layer,
centroids fine-tuned: Deep Compression's trained quantization) + int8.  For each: download (deflated) size ratio vs the original fp32
artifact, accuracy drop in points on the held-out digits, and host latency
ratio vs the original (single-threaded p50, interleaved rounds, this machine,
this run; > 1 means faster).  The model and data are the bundled example's
files as a user submits them: examples/digits/model.pt2 (an ExportedProgram:
structured pruning rebuilds it with layers through ONNX + onnx2torch),
train.npz (fine-tunes and calibrates) and the held-out data.npz (validates).

    .venv/bin/python bench/prune.py [--epochs 30] [--rounds 7] [--clusters 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples" / "digits")]

from compressor import CompressOptions, Precision, load_source, run_build  # noqa: E402
from compressor.runtimes import interleaved_p50, open_artifact  # noqa: E402

PROFILE = "pixel-8"  # TFLite only: the rows compare TFLite artifacts
TARGET_SIZE, TARGET_DROP, TARGET_SPEEDUP = 0.10, 1.0, 1.5


EXAMPLE = ROOT / "examples" / "digits"


def example_model() -> Path:
    path = EXAMPLE / "model.pt2"
    if not all((EXAMPLE / name).exists() for name in ("model.pt2", "train.npz", "data.npz")):
        raise SystemExit("run `make demo` (or python examples/digits/train.py) first to build the digits example")
    return path


def build(model: Path, work: Path, train_npz: Path, **pruning):
    source, data = load_source(model, data=EXAMPLE / "data.npz")  # the held-out split validates
    work.mkdir(parents=True, exist_ok=True)
    options = CompressOptions(
        precisions=(Precision.FP32, Precision.INT8_FULL), train_data=train_npz, latency_repeats=5, **pruning
    )
    return run_build(source, data, PROFILE, options, workdir=work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30, help="fine-tuning / distillation epochs")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved latency rounds")
    parser.add_argument("--clusters", type=int, default=16, help="shared values per layer in the clustered row")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-prune-"))
    original, train = example_model(), EXAMPLE / "train.npz"  # the example's own training split
    common = {"finetune_epochs": args.epochs, "finetune_seconds": 1800.0}
    structured = build(original, work / "structured", train, prune="structured", sparsity=0.5, distill=True, **common)
    unstructured = build(original, work / "unstructured", train, prune="unstructured", sparsity=0.8, **common)
    clustered = build(
        original,
        work / "clustered",
        train,
        prune="unstructured",
        sparsity=0.8,
        cluster=args.clusters,
        **common,
    )
    by_name = {c.name: c for c in structured.candidates + unstructured.candidates + clustered.candidates}
    rows = [
        ("original fp32", by_name["fp32.tflite"]),
        ("int8 only", by_name["int8-full.tflite"]),
        ("structured 50% + distill + int8", by_name["structured50-l2-distill.int8-full.tflite"]),
        ("unstructured 80% + int8", by_name["unstructured80.int8-full.tflite"]),
        (
            f"unstructured 80% + cluster{args.clusters} + int8",
            by_name[f"unstructured80-cluster{args.clusters}.int8-full.tflite"],
        ),
    ]
    for _, c in rows:
        if c.error:
            raise SystemExit(f"{c.name} failed: {c.error}")
    torch.set_num_threads(1)
    runners = {c.name: open_artifact(c.path, c.format.value) for _, c in rows}
    p50 = interleaved_p50(runners, structured.sample(), args.rounds, warmup=20, repeats=200)
    base = rows[0][1]
    print(
        f"digits CNN ({structured.inputs.source.params:,} params), held-out accuracy of the original: "
        f"{100 * base.metrics['reference_accuracy']:.2f}% on {len(structured.inputs.data.validation)} samples; profile {PROFILE}"
    )
    header = f"{'variant':38} {'params':>8} {'KB':>7} {'dl KB':>7} {'dl ratio':>8} {'acc %':>7} {'drop pt':>7} {'p50 ms':>7} {'speedup':>7}"
    print(header)
    print("-" * len(header))
    for label, c in rows:
        params = (c.technique or {}).get("after", {}).get("nonzero_params", c.params or structured.inputs.source.params)
        print(
            f"{label:38} {params:>8,} {c.size_bytes / 1024:>7.1f} {c.download_size_bytes / 1024:>7.1f} "
            f"{c.download_size_bytes / base.download_size_bytes:>8.3f} {100 * c.metrics['accuracy']:>7.2f} "
            f"{c.metrics['accuracy_drop']:>7.2f} {p50[c.name]:>7.4f} {p50[base.name] / p50[c.name]:>6.2f}x"
        )
    structured_row, int8_row = rows[2][1], rows[1][1]
    speedup = p50[int8_row.name] / p50[structured_row.name]
    print(f"structured vs int8-only on host: {speedup:.2f}x faster (target >= {TARGET_SPEEDUP}x)")
    for label, c in rows[2:]:
        ok = (
            c.download_size_bytes / base.download_size_bytes <= TARGET_SIZE
            and c.metrics["accuracy_drop"] <= TARGET_DROP
        )
        print(f"{label}: download <= {TARGET_SIZE}x and drop <= {TARGET_DROP} pt: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
