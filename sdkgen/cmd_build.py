"""``sdkgen build``: compress a model and generate its Android, iOS and Python SDKs."""

from __future__ import annotations

import argparse

from compressor.bundle.manifest import TASKS
from compressor.bundle.report import summary_table
from compressor.splitting.request import SplitRequest
from sdkgen.build import build
from sdkgen.cmd_compress import add_model_arguments
from sdkgen.cmd_plan import add_split_arguments
from sdkgen.commands import command
from sdkgen.console import console, out, stage_bars, warn_below_gate
from sdkgen.option_flags import options_from
from sdkgen.platforms import platforms
from sdkgen.spec import BUILD_MODES, SdkSpec, read_labels


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument(
        "--platform",
        default=",".join(platforms.names()),
        help=f"comma-separated SDK platforms (default all: {','.join(platforms.names())})",
    )
    parser.add_argument("--name", default="Model", help="SDK class name, UpperCamelCase (default Model)")
    parser.add_argument(
        "--package", default="com.example.model", help="Kotlin package / SDK namespace (default com.example.model)"
    )
    parser.add_argument("--labels", help="text file with one class name per line, in output order (makes a classifier)")
    parser.add_argument(
        "--task", choices=TASKS, help="model task (default: classification with --labels, raw otherwise)"
    )
    parser.add_argument(
        "--mode",
        choices=BUILD_MODES,
        default="edge",
        help="edge, cloud, split (run the best cut) or auto (the split planner chooses); default edge",
    )
    parser.add_argument("--cloud-endpoint", help="HOST:PORT of an Open Inference Protocol v2 gRPC server for fallback")
    parser.add_argument(
        "--confidence-threshold", type=float, default=0.6, help="below it a classifier asks the cloud (default 0.6)"
    )
    parser.add_argument("--timeout-ms", type=int, default=2000, help="cloud call timeout (default 2000)")
    parser.add_argument("--retries", type=int, default=1, help="cloud call retries (default 1)")
    parser.add_argument(
        "--pixel-scale",
        type=float,
        default=1.0 / 255.0,
        help="image helpers feed pixel (0..255) * scale + offset to the model (default 1/255)",
    )
    parser.add_argument("--pixel-offset", type=float, default=0.0, help="see --pixel-scale (default 0)")
    add_split_arguments(parser.add_argument_group("split planning (--mode auto or split)"))


def spec_from(args: argparse.Namespace) -> SdkSpec:
    return SdkSpec(
        name=args.name,
        package=args.package,
        platforms=tuple(p.strip() for p in args.platform.split(",") if p.strip()),
        labels=read_labels(args.labels) if args.labels else None,
        task=args.task,
        mode=args.mode,
        confidence_threshold=args.confidence_threshold,
        timeout_ms=args.timeout_ms,
        retries=args.retries,
        cloud_endpoint=args.cloud_endpoint,
        pixel_scale=args.pixel_scale,
        pixel_offset=args.pixel_offset,
    )


def split_request_from(args: argparse.Namespace) -> SplitRequest:
    return SplitRequest(objective=args.objective, uplink_mbps=args.uplink_mbps, rtt_ms=args.rtt_ms)


@command(
    "build", "Compress a model and generate SDKs (Android, iOS, Python) with the model and an edge-cloud fallback."
)
def run(args: argparse.Namespace) -> int:
    spec = spec_from(args)
    options = options_from(args)
    with stage_bars() as sink:
        result = build(
            args.model,
            args.profile,
            args.out,
            spec,
            data=args.data,
            options=options,
            progress=sink,
            split=split_request_from(args),
        )
    out.print(summary_table(result.report))
    warn_below_gate(result.report)
    for platform, path in result.sdk_dirs.items():
        console.print(f"[green]wrote[/] {platform} SDK: {path}")
    split = result.manifest["split"]
    if spec.plans_split:
        where = f"split at {split['cut']}" if split else result.manifest["policy"]["mode"]
        console.print(f"split planner chose: [bold]{where}[/]")
    console.print(f"[green]wrote[/] {result.out_dir / 'model-manifest.json'}")
    console.print(f"[green]report:[/] {result.out_dir / 'report.html'}")
    return 0
