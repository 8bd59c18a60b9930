"""Terminal output for the CLI: a console that survives converters' fd redirection, and stage progress bars."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from compressor.native_output import terminal
from compressor.progress import ProgressEvent, ProgressSink

_WIDE = 160  # tables stay readable when output goes to a file or CI log


class _Terminal:
    """stderr as the user sees it, also while converters' output is captured at the fd level."""

    def write(self, text: str) -> int:
        return terminal().write(text)

    def flush(self) -> None:
        terminal().flush()

    def isatty(self) -> bool:
        return terminal().isatty()


console = Console(file=_Terminal(), stderr=True, width=None if sys.stderr.isatty() else _WIDE)
out = Console(width=None if sys.stdout.isatty() else _WIDE)


_stage = ["start-up"]  # the stage the last progress event came from, for "internal error in <stage>"


def current_stage() -> str:
    """The pipeline stage the last progress event named (``start-up`` before any)."""
    return _stage[0]


@contextlib.contextmanager
def stage_bars() -> Iterator[ProgressSink]:
    """Yield a progress sink that draws one bar per pipeline stage."""
    columns = (
        TextColumn("[bold]{task.fields[stage]:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
    )
    tasks: dict[str, int] = {}
    with Progress(*columns, console=console, transient=False) as bars:

        def sink(event: ProgressEvent) -> None:
            _stage[0] = event.stage
            if event.stage not in tasks:
                tasks[event.stage] = bars.add_task("", total=event.total, stage=event.stage, note="")
            bars.update(tasks[event.stage], completed=event.done, total=event.total, note=event.message)

        yield sink


def warn_below_gate(report: dict) -> None:
    """Each format an integer-only profile shipped below the accuracy gate, in the warning colour."""
    from rich.markup import escape

    from compressor.bundle.report import below_gate_warnings

    for warning in below_gate_warnings(report):
        console.print(f"[bold yellow]{escape(warning)}[/]", highlight=False)
