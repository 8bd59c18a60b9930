"""``sdkgen report``: render a build's ``report.html`` again from its ``report.json`` (e.g. after an upgrade)."""

from __future__ import annotations

import argparse
from pathlib import Path

from compressor.bundle.report_html import rerender
from sdkgen.commands import command
from sdkgen.console import out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="a build folder written by sdkgen compress or sdkgen build")


@command("report", "Render a build folder's report.html again from its report.json (and manifest); print its path.")
def run(args: argparse.Namespace) -> int:
    path = rerender(args.dir).resolve()
    out.print(str(path), markup=False, highlight=False, soft_wrap=True)
    return 0
