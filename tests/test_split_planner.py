"""The split planner's choice with injected costs: deterministic, whatever else the machine is doing.

The planner's inputs that are measured on the host (the whole model's latency, the cost of one runtime call) are
injected here: the host is taken to run exactly as its roofline figures say.  On the bench's weak device
(raspberry-pi-zero-2w) the mobile-style CNN is best split after its cheap strided stem at every uplink, and the
VGG-style CNN runs all-edge at 1 Mbps and all-cloud at 10 and 100 Mbps; ``bench/split.py`` measures the same
choices end to end over a shaped loopback link (the regret figures live there, not in a test).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from split_harness import BenchCNN, MobileCNN

from compressor.profiles import Precision, get_profile, reference_profile
from compressor.splitting.costs import node_work, split_work
from compressor.splitting.graph import export_graph
from compressor.splitting.planner import network_for, plan_split

PROFILE = "raspberry-pi-zero-2w"
INVOKE_MS = 0.03


def plan_with_injected_costs(net: torch.nn.Module, uplink_mbps: float, factor: float = 1.0):
    args = (torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)),)
    gm = export_graph(net.eval(), args)
    work = node_work(gm, args)
    host_estimate = split_work(work, len(work))[0].estimate_ms(reference_profile(), Precision.FP32)
    profile = get_profile(PROFILE)
    return plan_split(
        gm,
        args,
        profile,
        Precision.FP32,
        factor * host_estimate + INVOKE_MS,
        network=network_for(profile, uplink_mbps),
        measured_invoke_ms=INVOKE_MS,
    )


@pytest.mark.parametrize(
    ("net", "uplink_mbps", "kind"),
    [
        (MobileCNN, 1.0, "split"),
        (MobileCNN, 10.0, "split"),
        (MobileCNN, 100.0, "split"),
        (BenchCNN, 1.0, "edge"),
        (BenchCNN, 10.0, "cloud"),
        (BenchCNN, 100.0, "cloud"),
    ],
)
def test_planner_choice_with_injected_costs(net, uplink_mbps, kind):
    plan = plan_with_injected_costs(net(), uplink_mbps)
    assert plan.chosen.kind == kind, [(r.label, round(r.total_ms, 2)) for r in plan.rows]
    assert plan.chosen.total_ms == min(r.total_ms for r in plan.rows)
    assert plan.calibration_factor == pytest.approx(1.0)


def test_a_slower_host_makes_the_device_dearer_and_moves_the_choice():
    """The calibration matters: the same VGG-style net at 1 Mbps goes to the cloud once the host is measured at
    twice its estimate (every device estimate is scaled alike)."""
    assert plan_with_injected_costs(BenchCNN(), 1.0, factor=1.0).chosen.kind == "edge"
    slow = plan_with_injected_costs(BenchCNN(), 1.0, factor=2.0)
    assert slow.chosen.kind == "cloud" and slow.calibration_factor == pytest.approx(2.0)
