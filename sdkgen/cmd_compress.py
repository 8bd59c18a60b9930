"""``sdkgen compress``: compress a model for a hardware profile."""

from __future__ import annotations

import argparse
from pathlib import Path

from compressor.api import compress
from compressor.bundle.report import summary_table
from sdkgen.commands import command
from sdkgen.console import console, out, stage_bars, warn_below_gate
from sdkgen.option_flags import add_option_arguments, options_from


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by every command that builds from a model: the model, profile, data, output and recipe."""
    parser.add_argument(
        "model", type=Path, help="model file: .pt2 (torch.export.save), .pt (TorchScript), .onnx or .keras"
    )
    parser.add_argument("--profile", required=True, help="hardware profile name (see `sdkgen profiles`)")
    parser.add_argument("--data", type=Path, help=".npz with one array per model input (or 'x') and optional 'labels'")
    parser.add_argument("--out", type=Path, required=True, help="output directory (created or replaced atomically)")
    add_option_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)


@command("compress", "Compress, convert and validate a model for a hardware profile; write the artifact(s) and report.")
def run(args: argparse.Namespace) -> int:
    with stage_bars() as sink:
        result = compress(args.model, args.profile, args.out, data=args.data, options=options_from(args), progress=sink)
    out.print(summary_table(result.report))
    warn_below_gate(result.report)
    for _fmt, rel in result.report["outputs"].items():
        console.print(f"[green]wrote[/] {result.out_dir / rel}")
    console.print(f"[green]wrote[/] {result.out_dir / 'report.json'}")
    console.print(f"[green]report:[/] {result.out_dir / 'report.html'}")
    return 0
