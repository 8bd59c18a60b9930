"""``sdkgen compress``: compress a model for a hardware profile."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError

from compressor.api import compress
from compressor.errors import InvalidInputError
from compressor.options import CompressOptions
from compressor.profiles import Precision
from compressor.report import summary_table
from sdkgen.commands import command
from sdkgen.console import console, out, stage_bars


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by every command that builds from a model."""
    parser.add_argument(
        "model", type=Path, help="model file: .pt2 (torch.export.save), .pt (TorchScript), .onnx or .keras"
    )
    parser.add_argument("--profile", required=True, help="hardware profile name (see `sdkgen profiles`)")
    parser.add_argument("--data", type=Path, help=".npz with one array per model input (or 'x') and optional 'labels'")
    parser.add_argument(
        "--max-accuracy-drop", type=float, default=1.0, help="accuracy gate in percentage points (default 1.0)"
    )
    parser.add_argument(
        "--min-cosine", type=float, default=0.99, help="gate for unlabeled data: minimum mean cosine (default 0.99)"
    )
    parser.add_argument(
        "--precision",
        action="append",
        choices=[p.value for p in Precision],
        help="only try these precisions (repeatable)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory (created or replaced atomically)")
    add_pruning_arguments(parser)


def add_pruning_arguments(parser: argparse.ArgumentParser) -> None:
    """Pruning, distillation and budgeted search (all off by default)."""
    group = parser.add_argument_group("pruning, distillation and search")
    group.add_argument(
        "--prune",
        choices=["none", "unstructured", "structured", "blocks"],
        default="none",
        help="pruning kind (default none)",
    )
    group.add_argument(
        "--sparsity",
        type=float,
        help="fraction removed: weights (unstructured), channels/heads (structured) or residual blocks (blocks); default 0.5",
    )
    group.add_argument(
        "--criterion",
        default="l2",
        help="structured importance: l1, l2, taylor, entropy, correlation, fpgm (default l2)",
    )
    group.add_argument(
        "--prune-scope", choices=["global", "layer"], default="global", help="rank across all layers or per layer"
    )
    group.add_argument(
        "--cluster",
        type=int,
        metavar="K",
        help="weight clustering: share K values per layer (2-256), centroids fine-tuned; int8 artifacts get one scale per tensor",
    )
    group.add_argument("--distill", action="store_true", help="train the pruned model on the original's soft targets")
    group.add_argument("--finetune-epochs", type=int, default=10, help="fine-tuning epochs after pruning (default 10)")
    group.add_argument(
        "--finetune-seconds", type=float, default=300.0, help="time bound on fine-tuning per variant (default 300)"
    )
    group.add_argument("--train-data", type=Path, help=".npz for fine-tuning (default: the --data samples)")
    group.add_argument("--target-size-kb", type=float, help="search: largest acceptable download (deflated) size in KB")
    group.add_argument("--target-latency-ms", type=float, help="search: largest acceptable host p50 latency in ms")
    group.add_argument(
        "--mixed-precision",
        action="store_true",
        help="add a TFLite candidate with int4/int8/fp16 weights chosen per layer by sensitivity",
    )


def options_from(args: argparse.Namespace) -> CompressOptions:
    """The build options from the command line; conflicting ones raise :class:`InvalidInputError` naming them."""
    try:
        return _options(args)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise InvalidInputError(f"invalid options: {problems}") from None


def _problem(error: dict) -> str:
    message = error["msg"].removeprefix("Value error, ")
    where = ".".join(map(str, error["loc"]))
    return f"--{where.replace('_', '-')}: {message}" if where else message


def _options(args: argparse.Namespace) -> CompressOptions:
    return CompressOptions(
        max_accuracy_drop=args.max_accuracy_drop,
        min_cosine=args.min_cosine,
        precisions=tuple(Precision(p) for p in args.precision) if args.precision else None,
        prune=args.prune,
        sparsity=args.sparsity,
        criterion=args.criterion,
        prune_scope=args.prune_scope,
        distill=args.distill,
        cluster=args.cluster,
        finetune_epochs=args.finetune_epochs,
        finetune_seconds=args.finetune_seconds,
        train_data=args.train_data,
        target_size_kb=args.target_size_kb,
        target_latency_ms=args.target_latency_ms,
        mixed_precision=args.mixed_precision,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)


@command("compress", "Compress, convert and validate a model for a hardware profile; write the artifact(s) and report.")
def run(args: argparse.Namespace) -> int:
    with stage_bars() as sink:
        result = compress(args.model, args.profile, args.out, data=args.data, options=options_from(args), progress=sink)
    out.print(summary_table(result.report))
    for _fmt, rel in result.report["outputs"].items():
        console.print(f"[green]wrote[/] {result.out_dir / rel}")
    console.print(f"[green]wrote[/] {result.out_dir / 'report.json'}")
    console.print(f"[green]report:[/] {result.out_dir / 'report.html'}")
    return 0
