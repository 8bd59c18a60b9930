"""Measure this machine's effective figures and write them into compressor/profiles/host.toml.

Three probes, each converted and quantized by the real pipeline and run in LiteRT
(single thread, as all host latencies are measured):
  compute   a stack of 3x3 convolutions (compute-bound): GMAC/s per precision = MACs / p50
  memory    wide fully-connected layers at batch 1 (weight-bound): GB/s = fp32 weight bytes / p50
  dispatch  a chain of tiny element-wise ops: microseconds per operator = p50 / operator count
Every other profile's latency estimate is scaled by how far the host's estimate
misses its measurement, so these figures calibrate all of them.

    .venv/bin/python bench/calibrate_host.py [--dry-run]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compressor import CompressOptions, Precision, load_source, run_build  # noqa: E402

HOST = ROOT / "compressor" / "profiles" / "host.toml"
ANY_OUTPUT = CompressOptions(min_cosine=-1.0, latency_repeats=30, latency_warmup=5)  # probes, not models: no gate


class Ops(nn.Module):
    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def forward(self, x):
        for i in range(self.count):
            x = x * 1.0001 + 0.5 if i % 2 else torch.relu(x - 0.25)
        return x


def _build(module: nn.Module, shape: tuple[int, ...], precisions=None):
    source, data = load_source(module, (torch.randn(*shape),), None)
    options = ANY_OUTPUT.model_copy(update={"precisions": precisions})
    state = run_build(source, data, "host", options)
    return state, {c.precision: c for c in state.candidates if c.format.value == "tflite" and c.error is None}


def measure() -> dict:
    convs = nn.Sequential(*[m for _ in range(6) for m in (nn.Conv2d(64, 64, 3, padding=1), nn.ReLU())])
    state, tflite = _build(convs, (1, 64, 32, 32))
    gmacs = {p.value: state.macs / (c.host_latency_ms["p50"] * 1e6) for p, c in tflite.items()}
    fcs = nn.Sequential(*[nn.Linear(2048, 2048) for _ in range(4)])
    _, tflite = _build(fcs, (1, 2048), (Precision.FP32,))
    fp32 = tflite[Precision.FP32]
    bandwidth = fp32.weight_bytes / (fp32.host_latency_ms["p50"] * 1e6)
    _, tflite = _build(Ops(200), (1, 16), (Precision.FP32,))
    chain = tflite[Precision.FP32]
    overhead = chain.host_latency_ms["p50"] * 1e3 / chain.n_ops
    return {"gmacs": gmacs, "memory_bandwidth_gbps": bandwidth, "op_overhead_us": overhead}


def write(figures: dict) -> str:
    text = HOST.read_text()
    table = ", ".join(f'"{k}" = {v:.1f}' for k, v in figures["gmacs"].items())
    text = re.sub(r"^gmacs = .*$", f"gmacs = {{ {table} }}", text, flags=re.M)
    text = re.sub(
        r"^memory_bandwidth_gbps = .*$",
        f"memory_bandwidth_gbps = {figures['memory_bandwidth_gbps']:.1f}",
        text,
        flags=re.M,
    )
    text = re.sub(r"^op_overhead_us = .*$", f"op_overhead_us = {figures['op_overhead_us']:.2f}", text, flags=re.M)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="print the figures, leave host.toml alone")
    args = parser.parse_args()
    figures = measure()
    print(figures)
    if not args.dry_run:
        HOST.write_text(write(figures))
        print(f"updated {HOST}")


if __name__ == "__main__":
    main()
