"""``sdkgen``: compress models for edge devices and generate their SDKs.

Every sub-command lives in its own ``cmd_*.py`` module and registers itself in
:data:`sdkgen.commands.commands`.
"""

from __future__ import annotations

import argparse
import sys

from compressor.errors import EdgeForgeError, GateFailedError
from sdkgen import cmd_build, cmd_compress, cmd_plan, cmd_profiles, cmd_report, cmd_serve, cmd_submit  # noqa: F401
from sdkgen.commands import commands
from sdkgen.console import console

EXIT_BAD_INPUT = 2
EXIT_GATE_FAILED = 3


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
    args = parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except GateFailedError as exc:
        if exc.report:
            from compressor.report import summary_table

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


if __name__ == "__main__":
    sys.exit(main())
