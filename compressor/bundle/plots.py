"""Charts for the HTML report, drawn with matplotlib and returned as inline SVG text.

Every chart marks each thing it plots (a candidate, a layer, a cut, a variant) as its own SVG group whose id is
``<chart>-item-<index>`` (``<chart>-item-<index>-<part>`` for the parts of a stacked bar), with a ``<title>`` for
the browser's hover text, so a reader (or a test) can tell which mark is which without JavaScript.  Every other
id matplotlib writes is prefixed with the chart's name, so several charts can share one HTML page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

# One palette for the whole report: formats and the parts of a split.
COLORS = {
    "tflite": "#1f77b4",
    "onnx": "#ff7f0e",
    "head": "#2a9d8f",
    "transfer": "#e9c46a",
    "tail": "#6d597a",
    "before": "#9aa5b1",
    "after": "#1f77b4",
}
SELECTED = "#d62828"
FAILED = "#8d99ae"
_STYLE = {
    "svg.fonttype": "none",  # text stays text: selectable, small, drawn in the page's font
    "svg.hashsalt": "edgeforge",  # stable clip-path ids, so the same report renders to the same bytes
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
}


@dataclass
class Chart:
    """One figure being drawn: its name (an HTML id), the matplotlib figure and the hover text of each mark."""

    name: str
    figure: Any  # matplotlib.figure.Figure
    titles: dict[str, str] = field(default_factory=dict)
    items: int = 0

    def mark(self, artist, index: int, title: str, part: str | None = None) -> None:
        """Give ``artist`` the id of item ``index`` (and ``part``) with ``title`` as its hover text."""
        gid = f"{self.name}-item-{index}" + (f"-{part}" if part else "")
        artist.set_gid(gid)
        self.titles[gid] = title
        self.items = max(self.items, index + 1)


@dataclass(frozen=True)
class Svg:
    """A rendered chart: inline SVG markup and how many items it draws a mark for."""

    name: str
    markup: str
    items: int


@contextmanager
def chart(name: str, width_in: float, height_in: float, ncols: int = 1, sharey: bool = False) -> Iterator:
    """Yield ``(Chart, axes)`` for a new figure; the caller draws, then calls :func:`to_svg`."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(cast(Any, _STYLE)):
        figure, axes = plt.subplots(1, ncols, figsize=(width_in, height_in), sharey=sharey, squeeze=False)
        try:
            yield Chart(name, figure), list(axes[0]) if ncols > 1 else axes[0][0]
        finally:
            plt.close(figure)


def to_svg(drawn: Chart) -> Svg:
    """The figure as inline SVG: no XML prolog or metadata, ids prefixed, marks titled, scaling with the page."""
    buffer = io.StringIO()
    drawn.figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    text = _prefix_ids(text, drawn.name, set(drawn.titles))
    for gid, title in drawn.titles.items():
        text = text.replace(f'<g id="{gid}">', f'<g id="{gid}"><title>{_escape(title)}</title>', 1)
    width = re.search(r'<svg[^>]*\swidth="([\d.]+)pt"', text)
    max_px = round(float(width.group(1)) * 4 / 3) if width else 800
    text = re.sub(
        r'<svg([^>]*?)\swidth="[\d.]+pt" height="[\d.]+pt"',
        rf'<svg\1 width="100%" style="max-width: {max_px}px" role="img" class="chart" data-chart="{drawn.name}"',
        text,
        count=1,
    )
    return Svg(drawn.name, text, drawn.items)


def _prefix_ids(text: str, prefix: str, keep: set[str]) -> str:
    """Prefix every id matplotlib wrote (and every reference to one) with ``prefix``, except the marks' own ids."""

    def rename(name: str) -> str:
        return name if name in keep else f"{prefix}-{name}"

    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{rename(m.group(1))}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{rename(m.group(1))})", text)
    return re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{rename(m.group(1))}"', text)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def log_scale_if_wide(axis_setter, values: list[float], ratio: float = 20.0) -> None:
    """Use a log axis when the positive ``values`` span more than ``ratio`` times."""
    positive = [v for v in values if v and v > 0]
    if positive and max(positive) / min(positive) > ratio:
        axis_setter("log")
