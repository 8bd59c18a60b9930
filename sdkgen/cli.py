"""``sdkgen``: compress models for edge devices and generate their SDKs.

Every sub-command lives in its own ``cmd_*.py`` module and registers itself in
:data:`sdkgen.commands.commands`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from pathlib import Path

import sdkgen.cmd_export_triton
import sdkgen.cmd_worker  # noqa: F401 - registration
from compressor.errors import EdgeForgeError, GateFailedError
from compressor.runtimes import quiet_native_logs
from sdkgen import cmd_build, cmd_compress, cmd_plan, cmd_profiles, cmd_report, cmd_serve, cmd_submit  # noqa: F401
from sdkgen.commands import commands
from sdkgen.console import console, current_stage

EXIT_BAD_INPUT = 2
EXIT_GATE_FAILED = 3
EXIT_INTERNAL = 4  # a bug of ours: one line on the terminal, the trace in a log file


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="sdkgen", description=__doc__.splitlines()[0])
    subparsers = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in commands.names():
        command = commands.get(name)
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return root


def main(argv: list[str] | None = None) -> int:
    quiet_native_logs()  # before TensorFlow or gRPC is imported by any command
    args = parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except GateFailedError as exc:
        if exc.report:
            from compressor.bundle.report import summary_table

            console.print(summary_table(exc.report))
        elif exc.table:
            console.print(exc.table, markup=False, highlight=False)
        console.print(f"[bold red]error:[/] {exc}")
        return EXIT_GATE_FAILED
    except EdgeForgeError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; nothing was written[/]")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a raw traceback for the user
        log = _write_trace(args)
        text = " ".join(str(exc).split())[:300]
        console.print(
            f"[bold red]internal error in {current_stage()}:[/] {type(exc).__name__}: {text}",
            markup=True,
            highlight=False,
        )
        console.print(f"nothing was written; the full trace is in {log} (please include it when reporting this)")
        return EXIT_INTERNAL


def _write_trace(args: argparse.Namespace) -> Path:
    """Write the current exception's trace beside the requested output folder (or to a temporary file)."""
    out = getattr(args, "out", None)
    if out is not None:
        path = Path(out).resolve()
        path = path.with_name(f"{path.name}.error.log")
    else:
        path = Path(tempfile.gettempdir()) / f"sdkgen-{os.getpid()}.error.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"sdkgen {' '.join(sys.argv[1:])}\n\n{traceback.format_exc()}")
    except OSError:
        path = Path(tempfile.mkstemp(prefix="sdkgen-", suffix=".error.log")[1])
        path.write_text(traceback.format_exc())
    return path


if __name__ == "__main__":
    sys.exit(main())
