"""``sdkgen export-triton``: a build's cloud model (and split tail) as a Triton model repository."""

from __future__ import annotations

import argparse
from pathlib import Path

from sdkgen.commands import command
from sdkgen.console import console


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("build_dir", type=Path, metavar="BUILD_DIR", help="an `sdkgen build` output folder")
    parser.add_argument("--out", type=Path, required=True, help="Triton model repository to write into")
    parser.add_argument(
        "--backend",
        choices=("onnxruntime", "python"),
        default="onnxruntime",
        help="Triton backend (default onnxruntime; python runs onnxruntime in Triton's Python backend)",
    )
    parser.add_argument(
        "--max-batch-size", type=int, default=8, help="Triton batch axis size (default 8; 0: shapes as in the manifest)"
    )
    parser.add_argument("--instances", type=int, default=1, help="model instances (default 1)")
    parser.add_argument("--instance-kind", choices=("auto", "cpu", "gpu"), default="cpu", help="default cpu")
    parser.add_argument("--dynamic-batching", action="store_true", help="let Triton batch concurrent requests")
    parser.add_argument(
        "--max-queue-delay-us", type=int, default=0, help="with --dynamic-batching: how long a batch waits (default 0)"
    )
    parser.add_argument("--force", action="store_true", help="replace models of the same name already in --out")


@command("export-triton", "Write a build's cloud model and split tail as a Triton (or KServe) model repository.")
def run(args: argparse.Namespace) -> int:
    from server.triton_repo import TritonOptions, export_repository

    options = TritonOptions(
        backend=args.backend,
        max_batch_size=args.max_batch_size,
        instances=args.instances,
        instance_kind=args.instance_kind,
        dynamic_batching=args.dynamic_batching,
        max_queue_delay_us=args.max_queue_delay_us,
    )
    for model in export_repository(args.build_dir, args.out, options, replace=args.force):
        console.print(f"[green]wrote[/] {model.folder} (version {model.version}, backend {args.backend})")
    return 0
