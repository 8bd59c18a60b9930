"""Planner regret on loopback: for uplinks of 1, 10 and 100 Mbps, the planner's choice measured end to end is
within 10% of the fastest way found by measuring every cut (bench/split_harness.py shapes the link).

Two nets on the bench's weak device: a mobile-style CNN whose best way is a real split (after the strided stem)
at every uplink, and a VGG-style CNN where all-edge wins at 1 Mbps and all-cloud at 10-100 Mbps."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from split_harness import BenchCNN, MobileCNN, SplitHarness

REGRET = 1.10
PROFILE = "raspberry-pi-zero-2w"  # on a Raspberry Pi 5 all-edge won everywhere


@pytest.fixture(scope="module", params=[MobileCNN, BenchCNN], ids=lambda cls: cls.__name__)
def harness(request):
    h = SplitHarness(request.param(), (torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)),), PROFILE)
    yield h
    h.close()


@pytest.mark.parametrize("uplink_mbps", [1.0, 10.0, 100.0])
def test_planner_choice_is_within_ten_percent_of_the_best_measured(harness, uplink_mbps):
    plan = harness.plan(uplink_mbps)
    measured = harness.measure_all(uplink_mbps, repeats=5)
    best = min(measured.values())
    if measured[plan.chosen.label] > REGRET * best:  # one re-measurement: two CPU cores are shared with other work
        measured = harness.measure_all(uplink_mbps, repeats=9)
        best = min(measured.values())
    assert measured[plan.chosen.label] <= REGRET * best, (plan.chosen.label, measured)
    if isinstance(harness.module, MobileCNN):  # built so that cutting after the stem pays off at every uplink
        assert plan.chosen.kind == "split", (plan.chosen.label, measured)
