"""Split inference on loopback: per uplink, measured end-to-end latency of all-cloud, all-edge, the planner's cut and
the best measured cut, with the ratios planner/best and cloud/planner, in one run.

    .venv/bin/python bench/split.py [--profile raspberry-pi-zero-2w] [--uplinks 1,10,100] [--repeats 5]

See bench/split_harness.py for how the link is shaped and how device-side figures are obtained (heads run in
onnxruntime on this host; the work part is stretched by the profile-to-host roofline ratio and the profile's
fixed per-invocation cost is added, the device model the planner uses).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
# A device about ten times slower than a Raspberry Pi 5: on this host the Pi 5 runs the whole BenchCNN faster than
# any uplink can ship its input, so all-edge won everywhere; on the Pi Zero 2 W the winner changes with the uplink.
DEFAULT_PROFILE = "raspberry-pi-zero-2w"


def main() -> None:
    import torch
    from split_harness import BenchCNN, MobileCNN, SplitHarness

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile", default=DEFAULT_PROFILE, help=f"emulated device profile (default {DEFAULT_PROFILE})"
    )
    parser.add_argument("--uplinks", default="1,10,100", help="comma-separated uplink bandwidths in Mbps")
    parser.add_argument("--repeats", type=int, default=5, help="end-to-end runs per way (median reported)")
    args = parser.parse_args()
    example = (torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)),)
    for model in (BenchCNN(), MobileCNN()):
        harness = SplitHarness(model, example, args.profile)
        try:
            _table(type(model).__name__, harness, args)
        finally:
            harness.close()


def _table(name: str, harness, args) -> None:
    print(
        f"{name} (3x32x32, {sum(w.macs for w in harness.work) / 1e6:.0f} MMAC), device {args.profile} emulated "
        "(onnxruntime here: work stretched by the profile/host roofline ratio, "
        f"host call {harness.invoke_ms * 1e3:.0f} us "
        f"-> device call {harness.profile.compute.invoke_overhead_us:.0f} us), server onnxruntime via gRPC "
        f"on loopback, measured RTT {harness.rtt_ms:.2f} ms, {len(harness.ways) - 2} cuts, median of {args.repeats}"
    )
    print(
        f"{'uplink':>8} {'cloud ms':>9} {'edge ms':>9} {'planner':>20} {'planner ms':>11} {'best':>20} "
        f"{'best ms':>9} {'planner/best':>13} {'cloud/planner':>14}"
    )
    for uplink in (float(u) for u in args.uplinks.split(",")):
        plan = harness.plan(uplink)
        measured = harness.measure_all(uplink, args.repeats)
        best = min(measured, key=measured.get)
        mine = measured[plan.chosen.label]
        print(
            f"{uplink:>8g} {measured['all-cloud']:>9.2f} {measured['all-edge']:>9.2f} {plan.chosen.label:>20} "
            f"{mine:>11.2f} {best:>20} {measured[best]:>9.2f} {mine / measured[best]:>13.3f} "
            f"{measured['all-cloud'] / mine:>14.2f}"
        )
    print()


if __name__ == "__main__":
    main()
