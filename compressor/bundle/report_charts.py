"""The report's charts, one function each, from the context of :mod:`compressor.bundle.report_context` and
:mod:`compressor.bundle.report_sections`; each returns a :class:`compressor.bundle.plots.Svg`."""

from __future__ import annotations

from compressor.bundle.plots import COLORS, FAILED, SELECTED, Svg, chart, log_scale_if_wide, to_svg
from compressor.bundle.report_context import CandidateRow
from compressor.bundle.report_sections import Layers, Mixed, Split, Variant

KB = 1024
_LEGEND = {"loc": "lower center", "bbox_to_anchor": (0.5, 1.0), "fontsize": 7, "frameon": False}


def _fidelity(row: CandidateRow, labeled: bool) -> float:
    value = row.accuracy_drop if labeled and row.accuracy_drop is not None else row.cosine_mean
    return float("nan") if value is None else value


GROUP_COLORS = ("#1f77b4", "#2a9d8f", "#9b5de5", "#f4a261", "#577590", "#e76f51", "#43aa8b", "#b5838d")
PRECISION_MARKERS = {"fp32": "o", "fp16": "s", "int8-dynamic": "^", "int8-full": "D"}


def _group(row: CandidateRow) -> str:
    return row.variant or "as submitted"


def size_fidelity(rows: list[CandidateRow], gate: dict, labeled: bool) -> Svg:
    """Each measured candidate at (size, accuracy drop or mean cosine), numbered as in the table.

    Colour tells the model variant, shape the precision, marker area the estimated device latency; hollow markers
    did not pass the gate or fit the profile, and the shipped one is ringed.
    """
    measured = [r for r in rows if r.measured]
    groups = list(dict.fromkeys(_group(r) for r in measured))
    slowest = max((r.device_ms or 0.0 for r in measured), default=0.0) or 1.0
    by_size = sorted(range(len(measured)), key=lambda i: measured[i].size_bytes or 0)
    above = {i: rank % 2 == 0 for rank, i in enumerate(by_size)}  # neighbours by size label on opposite sides
    with chart("size-fidelity", 5.6, 4.3) as (drawn, ax):
        for item, row in enumerate(measured):
            color = GROUP_COLORS[groups.index(_group(row)) % len(GROUP_COLORS)]
            point = ((row.size_bytes or 0) / KB, _fidelity(row, labeled))
            dot = ax.scatter(
                [point[0]],
                [point[1]],
                s=40 + 360 * (row.device_ms or 0.0) / slowest,
                marker=PRECISION_MARKERS.get(row.precision, "P"),
                facecolors=color if row.status in ("ok", "selected") else "none",
                edgecolors=SELECTED if row.status == "selected" else color,
                linewidths=2.5 if row.status == "selected" else 1.4,
                alpha=0.85,
                zorder=3,
            )
            drawn.mark(
                dot, item, f"{row.index + 1}. {row.name}: {point[0]:.1f} KB, device est. {row.device_ms or 0:.3f} ms"
            )
            selected = row.status == "selected"
            ax.annotate(
                f"#{row.index + 1}",
                point,
                xytext=(6, 6) if above[item] else (6, -13),
                textcoords="offset points",
                fontsize=8,
                color=SELECTED if selected else "#333333",
                fontweight="bold" if selected else "normal",
            )
        _gate_line(
            ax,
            [_fidelity(r, labeled) for r in measured],
            gate["max_accuracy_drop"] if labeled else gate["min_cosine"],
            labeled,
        )
        _legend(ax, groups, _precisions(measured))
        log_scale_if_wide(ax.set_xscale, [float(r.size_bytes or 0) for r in measured])
        ax.set_xlabel("artifact size (KB)")
        ax.set_ylabel("accuracy drop (points)" if labeled else "mean cosine with the original")
        ax.grid(True, alpha=0.3)
        return to_svg(drawn)


def _gate_line(ax, values: list[float], threshold: float, labeled: bool) -> None:
    """The gate as a dashed line, the failing side lightly shaded; the y range covers points and gate."""
    low, high = min([*values, threshold]), max([*values, threshold])
    pad = (high - low) * 0.12 or 0.1
    ax.set_ylim(low - pad, high + pad)
    ax.axhline(threshold, color=SELECTED, linestyle="--", linewidth=1)
    ax.axhspan(threshold, high + pad if labeled else low - pad, color=SELECTED, alpha=0.05, linewidth=0)
    ax.annotate(
        "gate",
        (0.0, threshold),
        xycoords=("axes fraction", "data"),
        xytext=(4, 3),
        textcoords="offset points",
        fontsize=7,
        color=SELECTED,
    )


def _precisions(rows: list[CandidateRow]) -> list[str]:
    """The precisions among ``rows``: the known ones in ladder order, then any others by name."""
    present = {r.precision for r in rows}
    return [p for p in PRECISION_MARKERS if p in present] + sorted(present - set(PRECISION_MARKERS))


def _legend(ax, groups: list[str], precisions: list[str]) -> None:
    """Which colour is which variant and which shape is which precision (proxy markers, not data)."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], linestyle="", marker="o", color=GROUP_COLORS[i % len(GROUP_COLORS)], label=g)
        for i, g in enumerate(groups)
    ]
    handles += [
        Line2D(
            [], [], linestyle="", marker=PRECISION_MARKERS.get(p, "P"), markerfacecolor="none", color="#333333", label=p
        )
        for p in precisions
    ]
    ax.legend(handles=handles, **_LEGEND, ncols=3)


def latency(rows: list[CandidateRow]) -> Svg:
    """Host p50 and estimated device latency of each measured candidate, as paired horizontal bars."""
    measured = [r for r in rows if r.measured]
    with chart("latency", 5.6, 1.0 + 0.36 * len(measured)) as (drawn, ax):
        for item, row in enumerate(measured):
            y = len(measured) - 1 - item
            host = ax.barh(y + 0.18, row.host_p50_ms, height=0.34, color="#9aa5b1")
            device = ax.barh(y - 0.18, row.device_ms or 0.0, height=0.34, color=COLORS.get(row.format, FAILED))
            drawn.mark(host.patches[0], item, f"{row.name}: host p50 {row.host_p50_ms:.3f} ms", "host")
            drawn.mark(device.patches[0], item, f"{row.name}: device est. {row.device_ms or 0:.3f} ms", "device")
        ax.set_yticks(range(len(measured)), [f"{r.name}  #{r.index + 1}" for r in reversed(measured)], fontsize=7)
        for label, row in zip(ax.get_yticklabels(), reversed(measured)):
            if row.status == "selected":
                label.set_color(SELECTED)
                label.set_fontweight("bold")
        ax.legend(["host p50 (measured)", "device (estimated)"], **_LEGEND, ncols=2)
        ax.set_xlabel("latency per inference (ms)")
        ax.grid(True, axis="x", alpha=0.3)
        return to_svg(drawn)


def layers(section: Layers) -> Svg:
    """Work, weight bytes and output activation bytes per operator, three panels sharing the operator axis."""
    from matplotlib.ticker import EngFormatter

    rows = section.charted
    labels = [f"{r.index}: {r.op} {r.name}"[:48] for r in rows]
    panels: tuple[tuple[str, str, str], ...] = (
        ("MACs", "macs", "#1f77b4"),
        ("weights (bytes)", "weight_bytes", "#2a9d8f"),
    )
    panels += (("output activation (bytes)", "activation_bytes", "#e76f51"),)
    with chart("layers", 9.6, 0.9 + 0.26 * len(rows), ncols=3, sharey=True) as (drawn, axes):
        for ax, (title, attr, color) in zip(axes, panels):
            bars = ax.barh(range(len(rows)), [getattr(r, attr) for r in rows], color=color, height=0.7)
            for item, (bar, row) in enumerate(zip(bars.patches, rows)):
                drawn.mark(bar, item, f"{row.op} {row.name}: {getattr(row, attr):,} {title}", attr)
            ax.set_title(title, fontsize=9)
            ax.grid(True, axis="x", alpha=0.3)
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))
            ax.tick_params(axis="x", labelsize=7)
        axes[0].set_yticks(range(len(rows)), labels, fontsize=7)
        axes[0].invert_yaxis()
        return to_svg(drawn)


def mixed(section: Mixed) -> Svg:
    """Each layer's measured sensitivity (1 - cosine) at every lowered precision; the chosen one is outlined."""
    from matplotlib.patches import Patch

    rungs = sorted({rung for layer in section.layers for rung in layer.sensitivity})
    palette = ["#e76f51", "#f4a261", "#e9c46a", "#2a9d8f", "#264653"]
    height = 0.8 / max(len(rungs), 1)
    with chart("mixed", 7.2, 1.0 + 0.45 * len(section.layers)) as (drawn, ax):
        for item, layer in enumerate(section.layers):
            for k, rung in enumerate(rungs):
                if rung not in layer.sensitivity:
                    continue
                chosen = rung == layer.chosen
                bar = ax.barh(
                    item - 0.4 + height * (k + 0.5),
                    max(layer.sensitivity[rung], 1e-9),
                    height=height * 0.9,
                    color=palette[k % len(palette)],
                    edgecolor=SELECTED if chosen else "none",
                    linewidth=2 if chosen else 0,
                )
                drawn.mark(
                    bar.patches[0], item, f"{layer.name} at {rung}: 1 - cosine {layer.sensitivity[rung]:.2g}", rung
                )
            if not layer.sensitivity:
                drawn.items = max(drawn.items, item + 1)
        ax.set_yticks(range(len(section.layers)), [f"{layer.name[:40]} → {layer.chosen}" for layer in section.layers])
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("output change with only this layer lowered (1 - cosine, log)")
        swatches = [Patch(color=palette[k % len(palette)], label=rung) for k, rung in enumerate(rungs)]
        ax.legend(handles=swatches, **_LEGEND, ncols=len(rungs))
        ax.grid(True, axis="x", alpha=0.3)
        return to_svg(drawn)


def split(section: Split) -> Svg:
    """Head, transfer and tail milliseconds of every way to run the model, stacked; the shipped one marked."""
    rows = section.rows
    with chart("split", 7.2, 0.9 + 0.3 * len(rows)) as (drawn, ax):
        for item, row in enumerate(rows):
            left = 0.0
            for part, value in (("head", row.head_ms), ("transfer", row.transfer_ms), ("tail", row.tail_ms)):
                bar = ax.barh(
                    item,
                    value,
                    left=left,
                    height=0.7,
                    color=COLORS[part],
                    edgecolor=SELECTED if row.shipped else "none",
                    linewidth=1.5 if row.shipped else 0,
                    label=part if item == 0 else None,
                )
                drawn.mark(bar.patches[0], item, f"{row.label}: {part} {value:.3f} ms", part)
                left += value
            ax.annotate(
                f"{row.total_ms:.2f} ms",
                (left, item),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
                color=SELECTED if row.shipped else "#333333",
            )
        ax.set_yticks(range(len(rows)), [("▶ " if r.shipped else "") + r.label for r in rows], fontsize=8)
        for label, row in zip(ax.get_yticklabels(), rows):
            if row.shipped:
                label.set_color(SELECTED)
                label.set_fontweight("bold")
        ax.invert_yaxis()
        ax.set_xlabel(f"estimated ms per request at {section.uplink_mbps:g} Mbps uplink, {section.rtt_ms:g} ms RTT")
        ax.legend(**_LEGEND, ncols=3)
        ax.grid(True, axis="x", alpha=0.3)
        return to_svg(drawn)


def pruning(variants: list[Variant]) -> Svg:
    """Parameters and MACs of each variant after pruning, as a share of the model before it."""
    with chart("pruning", 7.2, 0.9 + 0.55 * len(variants)) as (drawn, ax):
        for item, v in enumerate(variants):
            for offset, (part, before, after) in (
                (0.18, ("params", v.params_before, v.nonzero_after or v.params_after)),
                (-0.18, ("MACs", v.macs_before, v.macs_after)),
            ):
                share = 100 * after / before if before and after is not None else 0.0
                bar = ax.barh(
                    item - offset,
                    share,
                    height=0.34,
                    color=COLORS["after"] if part == "params" else "#2a9d8f",
                    label=part if item == 0 else None,
                )
                drawn.mark(bar.patches[0], item, f"{v.label}: {part} {share:.1f}% of the original", part)
        ax.axvline(100, color="#333333", linewidth=0.8, linestyle=":")
        ax.set_yticks(range(len(variants)), [v.label for v in variants], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 110)
        ax.set_xlabel("% of the original model (non-zero parameters; MACs)")
        ax.legend(**_LEGEND, ncols=2)
        ax.grid(True, axis="x", alpha=0.3)
        return to_svg(drawn)


def fine_tuning(variants: list[Variant]) -> Svg:
    """Mean training loss per epoch of every variant that was fine-tuned."""
    from matplotlib.ticker import MaxNLocator

    trained = [v for v in variants if v.epoch_losses]
    with chart("fine-tuning", 7.2, 3.2) as (drawn, ax):
        for item, v in enumerate(trained):
            (line,) = ax.plot(
                range(1, len(v.epoch_losses) + 1), v.epoch_losses, marker="o", markersize=3, label=v.label
            )
            drawn.mark(line, item, f"{v.label}: loss {v.epoch_losses[0]:.4f} → {v.epoch_losses[-1]:.4f}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean training loss")
        ax.legend(**_LEGEND, ncols=min(len(trained), 3))
        ax.grid(True, alpha=0.3)
        return to_svg(drawn)
