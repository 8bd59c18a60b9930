"""The HTML report's context for the summary and the candidates: facts from ``report.json``, no wording.

Templates turn these into sentences (``templates/report/``); this module only selects, ranks and derives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compressor.options import CompressOptions
from compressor.selection import choice_in

# Top-level folders of a build that are the bundle itself; any other folder is a generated SDK.
BUNDLE_DIRS = ("candidates", "cloud", "split")


@dataclass(frozen=True)
class CandidateRow:
    """One candidate as the report shows it; ``status`` is selected, ok, gate, fit or error."""

    index: int
    name: str
    format: str
    precision: str
    variant: str | None
    path: str | None
    size_bytes: int | None
    download_size_bytes: int | None
    ratio: float | None
    params: int | None
    macs: int | None
    accuracy: float | None
    reference_accuracy: float | None
    accuracy_drop: float | None
    top1_agreement: float | None
    cosine_mean: float | None
    cosine_min: float | None
    host_p50_ms: float | None
    host_p90_ms: float | None
    device_ms: float | None
    status: str
    problems: tuple[str, ...]

    @property
    def measured(self) -> bool:
        """It was built and measured, so the charts can place it."""
        return self.status != "error" and self.size_bytes is not None and self.host_p50_ms is not None


@dataclass(frozen=True)
class Selection:
    """The artifact shipped for one format and what it was chosen over."""

    format: str
    file: str
    chosen: CandidateRow
    usable: int  # candidates of this format that passed the gate and fit the profile
    total: int  # candidates of this format
    smaller_rejected: tuple[CandidateRow, ...]  # smaller candidates that were not usable, and why
    runner_up: CandidateRow | None  # the next usable candidate by the selection's order
    sentence: str | None = None  # why, against the runner-up, for the build's objective (report.json's selection)
    objective: str | None = None
    below_gate: bool = False  # an integer-only profile shipped its closest candidate although it missed the gate


def candidate_rows(report: dict) -> list[CandidateRow]:
    """Every candidate of ``report`` in build order, with its status."""
    chosen = set(report["selected_by_format"].values())
    source_size = report["source"]["size_bytes"]
    rows = []
    for i, a in enumerate(report["artifacts"]):
        m, latency = a["metrics"] or {}, a["host_latency_ms"] or {}
        rows.append(
            CandidateRow(
                index=i,
                name=a["name"],
                format=a["format"],
                precision=a["precision"],
                variant=a["variant"],
                path=a["path"],
                size_bytes=a["size_bytes"],
                download_size_bytes=a["download_size_bytes"],
                ratio=a["size_bytes"] / source_size if a["size_bytes"] and source_size else None,
                params=a["params"],
                macs=a["macs"],
                accuracy=m.get("accuracy"),
                reference_accuracy=m.get("reference_accuracy"),
                accuracy_drop=m.get("accuracy_drop"),
                top1_agreement=m.get("top1_agreement"),
                cosine_mean=m.get("cosine_mean"),
                cosine_min=m.get("cosine_min"),
                host_p50_ms=latency.get("p50"),
                host_p90_ms=latency.get("p90"),
                device_ms=a["estimated_device_latency_ms"],
                status=_status(a, i in chosen),
                problems=tuple([a["error"]] if a["error"] else a["fit_problems"]),
            )
        )
    return rows


def _status(artifact: dict, chosen: bool) -> str:
    if artifact["error"]:
        return "error"
    if chosen:
        return "selected"
    if not artifact["passed_gate"]:
        return "gate"
    return "fit" if artifact["fit_problems"] else "ok"


def selections(report: dict, rows: list[CandidateRow]) -> list[Selection]:
    """Per shipped format: the chosen candidate, the smaller ones that could not ship, the runner-up."""
    out = []
    for fmt, index in report["selected_by_format"].items():
        same = [r for r in rows if r.format == fmt]
        usable = sorted((r for r in same if r.status in ("ok", "selected")), key=_selection_order)
        chosen = rows[index]
        smaller = [
            r
            for r in same
            if r.status in ("gate", "fit") and r.size_bytes is not None and r.size_bytes < chosen.size_bytes
        ]
        after = [r for r in usable if r.index != index]
        choice = choice_in(report, fmt)
        if choice.get("runner_up"):
            after = [r for r in after if r.name == choice["runner_up"]] + [
                r for r in after if r.name != choice["runner_up"]
            ]
        out.append(
            Selection(
                fmt,
                report["outputs"][fmt],
                chosen,
                len(usable),
                len(same),
                tuple(sorted(smaller, key=_selection_order)),
                after[0] if after else None,
                choice.get("sentence"),
                choice.get("objective"),
                bool(choice.get("below_gate")),
            )
        )
    return out


def _selection_order(row: CandidateRow) -> tuple:
    """The order compressor.passes.select_artifact_pass picks by: smallest file, then fastest on the host."""
    return (row.size_bytes or 0, row.host_p50_ms or 0.0)


def rebuild_command(report: dict, manifest: dict | None, build_dir: Path) -> list[str]:
    """The ``sdkgen`` command line that repeats this build, as argv, from what report.json and the manifest record.

    The data file's name, the output folder and, for SDK builds, the Kotlin ``--package`` are not recorded;
    placeholders stand in.  ``build_dir``'s sub-folders other than the bundle's own are the SDK platforms.
    """
    source = Path(report["source"]["path"] or "model.pt2").name
    argv = ["sdkgen", "build" if manifest else "compress", source, "--profile", report["profile"]]
    if not report["data"]["synthetic"]:
        argv += ["--data", "DATA.npz"]
    argv += _option_flags(report.get("options") or {}, report.get("options_given"))
    if manifest:
        argv += _sdk_flags(manifest, build_dir)
    return [*argv, "--out", "OUT"]


def _option_flags(options: dict, given: list[str] | None) -> list[str]:
    """Flags for the options that were asked for (``options_given``; older reports: those off their default)."""
    defaults = {name: info.default for name, info in CompressOptions.model_fields.items()}
    asked = set(given) if given is not None else {n for n, v in options.items() if n in defaults and v != defaults[n]}
    flags: list[str] = []
    for name, value in options.items():
        if name not in asked or name in _API_ONLY or value is None:
            continue
        flag = CompressOptions.flag(name)
        if name == "precisions":
            for precision in value:
                flags += [flag, precision]
        elif value is True:
            flags.append(flag)
        elif value is False:
            flags.append(f"--no-{flag.removeprefix('--')}")
        elif name in ("train_data", "val_data"):
            flags += [flag, Path(value).name]
        else:
            flags += [flag, str(value)]
    return flags


# Options with no sdkgen flag (the Python API sets them); the command line cannot carry them.  Every option has
# a flag today (sdkgen.option_flags generates them from CompressOptions), so this stays empty unless one is added.
_API_ONLY: set[str] = set()


def api_only_options(report: dict) -> dict:
    """Options this build used that only the Python API sets (the rebuild command cannot carry them)."""
    defaults = {name: info.default for name, info in CompressOptions.model_fields.items()}
    options = report.get("options") or {}
    return {k: v for k, v in options.items() if k in _API_ONLY and v != defaults[k]}


def _sdk_flags(manifest: dict, build_dir: Path) -> list[str]:
    sdks = sorted(p.name for p in build_dir.iterdir() if p.is_dir() and p.name not in BUNDLE_DIRS)
    flags = ["--platform", ",".join(sdks), "--name", manifest["name"], "--package", "PACKAGE"]
    if manifest["labels"]:
        flags += ["--labels", "labels.txt"]
    policy = manifest["policy"]
    flags += ["--mode", policy["mode"]]
    if manifest["cloud"]["endpoint"]:
        flags += ["--cloud-endpoint", manifest["cloud"]["endpoint"]]
    plan = (manifest.get("split") or {}).get("plan")
    if plan:
        flags += ["--uplink-mbps", f"{plan['uplink_mbps']:g}", "--rtt-ms", f"{plan['rtt_ms']:g}"]
        if plan["objective"] != "latency":
            flags += ["--objective", plan["objective"]]
    return flags
