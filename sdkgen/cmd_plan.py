"""``sdkgen plan``: where to split a model between the device and the server, cut by cut, with a bar chart."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table
from rich.text import Text

from compressor.api import load_source
from compressor.errors import InvalidInputError
from compressor.profiles import Precision, get_profile
from compressor.splitting.graph import export_graph
from compressor.splitting.planner import Plan, measure_invoke_ms, measure_whole_ms, network_for, plan_split
from compressor.splitting.request import OBJECTIVES
from sdkgen.commands import command
from sdkgen.console import out

BAR_WIDTH = 32
SEGMENTS = (
    ("head_ms", "green", "head (device)"),
    ("transfer_ms", "yellow", "transfer"),
    ("tail_ms", "blue", "tail (server)"),
)


def add_split_arguments(parser: argparse.ArgumentParser) -> None:
    """Network overrides and objective, shared by ``plan`` and ``build``."""
    parser.add_argument(
        "--uplink-mbps", type=float, help="uplink bandwidth (default: the profile's network.uplink_mbps)"
    )
    parser.add_argument("--rtt-ms", type=float, help="round-trip time (default: the profile's network.rtt_ms)")
    parser.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default="latency",
        help="what the planner minimizes (energy needs a profile with [power] figures)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="model file: .pt2 (torch.export.save), .pt (TorchScript) or .onnx")
    parser.add_argument("--profile", required=True, help="hardware profile name (see `sdkgen profiles`)")
    parser.add_argument("--data", type=Path, help=".npz with one array per model input (needed for dynamic shapes)")
    parser.add_argument(
        "--precision",
        choices=[p.value for p in Precision],
        help="head precision on the device (default: the profile's smallest accepted one)",
    )
    add_split_arguments(parser)


@command("plan", "Estimate every split point of a model for a profile's device and network, and mark the fastest.")
def run(args: argparse.Namespace) -> int:
    profile = get_profile(args.profile)
    precision = Precision(args.precision) if args.precision else profile.accepts.precisions[-1]
    if precision not in profile.compute.gmacs:
        raise InvalidInputError(
            f"profile {profile.name!r} has no compute figure for {precision.value}; "
            f"choose from {', '.join(p.value for p in profile.compute.gmacs)}"
        )
    source, samples = load_source(args.model, data=args.data)
    module = source.to_torch()
    import torch

    sample_args = tuple(torch.from_numpy(v[:1].copy()) for v in samples.inputs.values())
    gm = export_graph(module, sample_args)
    plan = plan_split(
        gm,
        sample_args,
        profile,
        precision,
        measure_whole_ms(module, sample_args),
        network=network_for(profile, args.uplink_mbps, args.rtt_ms),
        objective=args.objective,
        measured_invoke_ms=measure_invoke_ms(),
    )
    out.print(plan_table(plan))
    chosen = plan.chosen
    out.print(
        f"choice: [bold]{chosen.label}[/] ({chosen.kind}), estimated {chosen.total_ms:.2f} ms; "
        f"all-edge {plan.row('all-edge').total_ms:.2f} ms, all-cloud {plan.row('all-cloud').total_ms:.2f} ms"
    )
    return 0


def plan_table(plan: Plan) -> Table:
    """One row per way to run the model: work, bytes sent, estimated head/transfer/tail/total and a stacked bar."""
    net = plan.network
    title = (
        f"split plan for {plan.profile} ({plan.precision.value} head) over {net.uplink_mbps:g} Mbps up, "
        f"{net.rtt_ms:g} ms RTT; objective {plan.objective}"
    )
    table = Table(title=title, caption=" ".join(f"[{c}]■[/] {name}" for _, c, name in SEGMENTS))
    for name in ("", "cut", "head MMAC", "tail MMAC", "bytes sent", "head ms", "transfer ms", "tail ms", "total ms"):
        table.add_column(name, justify="left" if name in ("", "cut") else "right")
    energy = plan.rows[0].energy_mj is not None
    if energy:
        table.add_column("energy mJ", justify="right")
    table.add_column("estimated total")
    longest = max(r.total_ms for r in plan.rows) or 1.0
    for i, row in enumerate(plan.rows):
        mark = "▶" if i == plan.choice else ""
        cells = [
            mark,
            row.label,
            f"{row.head.macs / 1e6:.3f}",
            f"{row.tail.macs / 1e6:.3f}",
            f"{row.up_bytes:,}",
            f"{row.head_ms:.3f}",
            f"{row.transfer_ms:.3f}",
            f"{row.tail_ms:.3f}",
            f"{row.total_ms:.3f}",
        ]
        if energy:
            cells.append(f"{row.energy_mj:.3f}")
        table.add_row(*cells, _bar(row, longest), style="bold" if i == plan.choice else None)
    return table


def _bar(row, longest: float) -> Text:
    bar = Text()
    for attr, colour, _ in SEGMENTS:
        bar.append("█" * round(getattr(row, attr) / longest * BAR_WIDTH), style=colour)
    return bar
