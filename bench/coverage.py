"""Model coverage: every zoo model (tests/model_zoo.py) x profile through the user path, as a matrix.

Each case is ``compressor.compress(model, profile, out, data="data.npz")`` with the CLI's defaults. Per case:
built / failed (one-line reason, and where the exception came from), the selected artifact, size ratio
(selected artifact / submitted file), fidelity (mean cosine and top-1 agreement against the original, from
the report), accuracy drop where the data has labels, the task metric of the original and of the selected
artifact (run here in its runtime), and the host p50 latency of the selected artifact against the bare
converter's fp32 output of the same format (the fp32 candidate, when the profile builds one).

Cases run in one worker process per model (a converter that crashes the interpreter takes only that model's
remaining cases); every exception is caught per case. Results go to a JSON file (full tracebacks included)
and a markdown table for the README.

    .venv/bin/python bench/coverage.py                         # the full matrix (hours on 2 cores)
    .venv/bin/python bench/coverage.py --models resnet,ppocr-cls --profiles pixel-8
    .venv/bin/python bench/coverage.py --light                 # models not marked heavy
    .venv/bin/python bench/coverage.py --table build/coverage/results.json   # reprint a finished run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

PROFILES = ("pixel-8", "coral-edgetpu", "jetson-orin-nano", "host")
HOST_FOR = (".onnx",)  # host (TFLite + ONNX) where it means something: sources whose TFLite route may fail
DEFAULT_OUT = ROOT / "build" / "coverage"
DEFAULT_CACHE = ROOT / "build" / "zoo"


def profiles_for(model_file: Path, wanted: tuple[str, ...]) -> list[str]:
    return [p for p in wanted if p != "host" or model_file.suffix in HOST_FOR]


# ------------------------------------------------------------------------------------------------ one case


def run_case(zoo_model, profile: str, reference: list | None) -> dict:
    """Build ``zoo_model`` for ``profile`` as a user would; never raises."""
    import compressor
    from compressor.errors import EdgeForgeError, GateFailedError

    row = {"model": zoo_model.name, "profile": profile, "export": zoo_model.export, "task": zoo_model.task}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"coverage-{zoo_model.name}-") as work:
        out = Path(work) / "out"
        try:
            result = compressor.compress(zoo_model.model, profile, out, data=zoo_model.data)
        except GateFailedError as exc:
            row.update(status="failed", reason=_one_line(exc), kind="gate", report=_slim(exc.report))
        except EdgeForgeError as exc:
            row.update(status="failed", reason=_one_line(exc), kind=type(exc).__name__, where=_where(exc))
            row["traceback"] = traceback.format_exc()
        except Exception as exc:
            row.update(status="failed", reason=_one_line(exc), kind="raw " + type(exc).__name__, where=_where(exc))
            row["traceback"] = traceback.format_exc()
        else:
            row.update(status="built", report=_slim(result.report))
            row.update(_figures(zoo_model, result, reference))
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:400]}"


def _where(exc: BaseException) -> str:
    """The innermost frame of the exception, as path:line (function)."""
    frames = traceback.extract_tb(exc.__traceback__)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause.__traceback__ is not None:
        frames = traceback.extract_tb(cause.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    name = frame.filename.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
    return f"{name}:{frame.lineno} ({frame.name})"


def _slim(report: dict | None) -> dict | None:
    if report is None:
        return None
    keep = ("name", "format", "precision", "size_bytes", "metrics", "passed_gate", "fit_problems", "error")
    return {
        "source": {k: report.get("source", {}).get(k) for k in ("format", "size_bytes", "inputs")},
        "selected": report.get("selected"),
        "outputs": report.get("outputs"),
        "candidates": [
            {**{k: c.get(k) for k in keep}, "p50_ms": (c.get("host_latency_ms") or {}).get("p50")}
            for c in report.get("artifacts", [])
        ],
    }


def _figures(zoo_model, result, reference: list | None) -> dict:
    """Size ratio, fidelity, latency vs the fp32 converter output and the task metric of each selected artifact."""
    from model_zoo import feeds_for

    from compressor.runtimes import open_artifact
    from compressor.selection import choice_in

    report = result.report
    candidates = report["artifacts"]
    by_name = {c["name"]: c for c in candidates}
    figures: dict = {"selected": {}}
    for fmt, index in report["selected_by_format"].items():
        chosen, rel = candidates[index], report["outputs"][fmt]
        bare = by_name.get(f"fp32.{fmt}")
        entry = {
            "artifact": chosen["name"],
            "below_gate": bool(choice_in(report, fmt).get("below_gate")),
            "size_ratio": chosen["size_bytes"] / zoo_model.size_bytes,
            "cosine_mean": chosen["metrics"]["cosine_mean"],
            "top1_agreement": chosen["metrics"]["top1_agreement"],
            "accuracy_drop": chosen["metrics"]["accuracy_drop"],
            "p50_ms": chosen["host_latency_ms"]["p50"],
            "p50_vs_bare": (
                chosen["host_latency_ms"]["p50"] / bare["host_latency_ms"]["p50"]
                if bare and bare.get("host_latency_ms")
                else None
            ),
        }
        if zoo_model.metric_name and reference is not None:
            feeds = feeds_for(zoo_model)
            try:
                outputs = open_artifact(result.out_dir / rel, fmt).run(feeds)
                entry["task_metric"] = zoo_model.task_metric(outputs, feeds)
            except Exception as exc:
                entry["task_metric_error"] = _one_line(exc)
        figures["selected"][fmt] = entry
    return figures


def worker(names: list[str], profiles: tuple[str, ...], cache: Path, results: Path) -> None:
    """Build each zoo model and run its cases, appending one JSON line per case to ``results``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from model_zoo import build, feeds_for, reference_outputs

    for name in names:
        try:
            zoo_model = build(name, cache)
        except Exception as exc:
            _append(results, {"model": name, "profile": "*", "status": "zoo-failed", "reason": _one_line(exc)})
            continue
        reference, original_metric = None, None
        if zoo_model.metric_name:
            try:
                reference = reference_outputs(zoo_model)
                original_metric = zoo_model.task_metric(reference, feeds_for(zoo_model))
            except Exception as exc:
                original_metric = f"original failed: {_one_line(exc)}"
        for profile in profiles_for(zoo_model.model, profiles):
            _append(results, {"progress": f"{name} {profile}"})
            row = run_case(zoo_model, profile, reference)
            row.update(
                metric_name=zoo_model.metric_name,
                original_metric=original_metric,
                source_bytes=zoo_model.size_bytes,
                build_seconds=zoo_model.build_seconds,
            )
            _append(results, row)


def _append(path: Path, row: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(row, default=str) + "\n")


# --------------------------------------------------------------------------------------------- the driver


def run_matrix(names: list[str], profiles: tuple[str, ...], cache: Path, out: Path, resume: bool = False) -> list[dict]:
    """One worker process per model; rich progress over the cases; returns every case's row.

    ``resume`` keeps the rows of an earlier run in ``out`` and runs only the cases they lack."""
    from model_zoo import build
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    out.mkdir(parents=True, exist_ok=True)
    lines = out / "results.jsonl"
    if not resume:
        lines.unlink(missing_ok=True)
    done_before = {(r["model"], r["profile"]) for r in _read(lines) if "status" in r}
    planned = {
        n: [p for p in profiles_for(build(n, cache).model, profiles) if (n, p) not in done_before] for n in names
    }
    planned = {n: cases for n, cases in planned.items() if cases}
    rows: list[dict] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as progress:
        task = progress.add_task("coverage", total=sum(len(p) for p in planned.values()))
        for name, cases in planned.items():
            log = open(out / f"{name}.log", "w")  # noqa: SIM115 - closed below, after the worker ends
            seen = len(_read(lines))
            command = [sys.executable, __file__, "--worker", name, "--profiles", ",".join(cases), "--cache", str(cache)]
            process = subprocess.Popen([*command, "--results", str(lines)], stdout=log, stderr=subprocess.STDOUT)
            while process.poll() is None:
                time.sleep(1)
                for row in _read(lines)[seen:]:
                    seen += 1
                    if "progress" in row:
                        progress.update(task, description=row["progress"])
                    else:
                        progress.advance(task)
            log.close()
            done = {r["profile"] for r in _read(lines) if r.get("model") == name and "status" in r}
            for profile in cases:
                if profile not in done:  # the worker died (segfault, OOM) during this case or before it
                    _append(
                        lines,
                        {
                            "model": name,
                            "profile": profile,
                            "status": "failed",
                            "kind": "crash",
                            "reason": f"worker exited with status {process.returncode}; see {name}.log",
                        },
                    )
                    progress.advance(task)
    order = {n: i for i, n in enumerate(names)}
    rows = sorted(
        (r for r in _read(lines) if "status" in r),
        key=lambda r: (
            order.get(r["model"], len(order)),
            PROFILES.index(r["profile"]) if r["profile"] in PROFILES else 9,
        ),
    )
    (out / "results.json").write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return rows


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _fmt(value, spec: str = ".3f") -> str:
    return "" if value is None else format(value, spec)


def markdown(rows: list[dict]) -> str:
    """The matrix as a markdown table: one row per model x profile."""
    head = (
        "| model | export | profile | result | artifact | size ratio | cosine | top-1 agr. | task metric (orig → art.) "
        "| p50 ms (vs fp32 converter) |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    body = []
    for r in rows:
        if r["status"] != "built":
            reason = r.get("reason", "").replace("|", "/")
            body.append(
                f"| {r['model']} | {_short_export(r)} | {r['profile']} | **failed**: {reason[:160]} | | | | | | |"
            )
            continue
        for _fmt_name, s in r.get("selected", {}).items():
            metric = ""
            if r.get("metric_name"):
                original = r.get("original_metric")
                got = s.get("task_metric")
                metric = f"{r['metric_name']} {_fmt(original, '.1f') if isinstance(original, float) else original} → {_fmt(got, '.1f')}"
            ratio = f" ({s['p50_vs_bare']:.2f}x)" if s.get("p50_vs_bare") else ""
            body.append(
                f"| {r['model']} | {_short_export(r)} | {r['profile']} | {_built(s)} | {s['artifact']} | {s['size_ratio']:.2f} "
                f"| {_fmt(s['cosine_mean'], '.4f')} | {_fmt(s['top1_agreement'], '.2f')} | {metric} | {s['p50_ms']:.2f}{ratio} |"
            )
    return "\n".join([head, *body]) + "\n"


# failure reason -> the class in docs/coverage-findings.md (first match wins)
FINDINGS = (
    (r"Guard failed: \w+\.size\(\)\[0\] == 1", "F1 batch fixed at 1"),
    (r"in pytree is not registered|not a readable ExportedProgram", "F2 ModelOutput pytree"),
    (r"^KeyError", "F3 Constant weights (raw KeyError)"),
    (r"GuardOnDataDependentSymNode", "F4 onnx2torch Reshape/Slice in torch.export"),
    (r"no_integer_overflow_from_quantization", "F5 builtin kernel refuses a candidate"),
    (r"ops outside the allow-list: PADV2", "F7 PADV2 on Edge TPU"),
    (r"ops outside the allow-list", "F12 ops outside the Edge TPU allow-list"),
    (r"state|does not match model input", "F8 state/scalar inputs in --data"),
    (r"TS2EPConverter", "F9 TorchScript control flow"),
    (r"INT64 but expected type INT32", "F15 int64 calibration data"),
    (r"num_scales must be 1", "F16 per-channel scales LiteRT refuses"),
    (r"elem type differs", "F17 fp16 ONNX value_info"),
    (r"Op \(If\) \[TypeInferenceError\]", "F8 If on the sample rate (TFLite route)"),
    (r"LSTM", "onnx2torch has no LSTM (F8)"),
    (r"Keras models reach TFLite only", "F11 Keras has no ONNX route"),
    (r"STABLEHLO_REDUCE_WINDOW", "F19 int8 of a StableHLO reduce_window"),
    (r"cosine mean 0\.0000", "F18 degenerate outputs (cosine 0)"),
)


def finding(reason: str) -> str:
    label = next((label for pattern, label in FINDINGS if re.search(pattern, reason)), None)
    gate = re.search(r"the best, ([\w.-]+), failed the gate with cosine mean ([\d.]+)", reason)
    if label is None and gate:  # the best candidate's figures say how far it is from the gate
        top1 = re.search(r"top-1 agreement ([\d.]+)", reason)
        return f"{gate[1]} below the gate: cos {float(gate[2]):.3f}" + (f", top-1 {float(top1[1]):.2f}" if top1 else "")
    return label or reason[:80]


def pivot(rows: list[dict]) -> str:
    """One row per model, one column per profile: what was shipped, or the failure's class (README table)."""
    profiles = [p for p in PROFILES if any(r["profile"] == p for r in rows)]
    cells: dict[str, dict[str, str]] = {}
    exports: dict[str, str] = {}
    for r in rows:
        exports[r["model"]] = _short_export(r)
        if r["status"] == "built":
            parts = []
            for sel in r.get("selected", {}).values():
                text = f"{sel['artifact']} cos {_fmt(sel['cosine_mean'], '.4f')}"
                if r.get("metric_name") and sel.get("task_metric") is not None:
                    original = r.get("original_metric")
                    text += f", {r['metric_name']} {_fmt(original, '.1f')}→{_fmt(sel['task_metric'], '.1f')}"
                parts.append(text)
            below = any(sel.get("below_gate") for sel in r.get("selected", {}).values())
            cells.setdefault(r["model"], {})[r["profile"]] = (
                "⚠️ below the gate, shipped: " if below else "✅ "
            ) + "; ".join(parts)
        else:
            cells.setdefault(r["model"], {})[r["profile"]] = "❌ " + finding(r.get("reason", ""))
    head = "| model | export | " + " | ".join(profiles) + " |\n|---|---|" + "---|" * len(profiles)
    body = [f"| {m} | {exports[m]} | " + " | ".join(cells[m].get(p, "–") for p in profiles) + " |" for m in cells]
    built = sum(r["status"] == "built" for r in rows)
    return "\n".join([head, *body]) + f"\n\n{built} of {len(rows)} cases built.\n"


def _built(selected: dict) -> str:
    """'built', or, where an integer-only profile shipped its closest candidate, that it missed the gate."""
    return "built below the gate" if selected.get("below_gate") else "built"


def _short_export(row: dict) -> str:
    export = row.get("export") or ""
    if export.startswith(("ONNX", "TorchScript", "Keras")):
        return export.split(" (")[0].replace(" model.save", "") + (" + normalize" if "onnx_normalize" in export else "")
    if "batch fixed" in export:
        return "pt2 batch 1"
    if "dynamic batch" in export:
        return "pt2 dyn batch"
    return export.split(" (")[0]


def summary(rows: list[dict]) -> str:
    built = sum(r["status"] == "built" for r in rows)
    return f"{built} of {len(rows)} cases built"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="comma-separated zoo names (default: all)")
    parser.add_argument("--group", choices=["transformers", "onnx-light", "pretrained"])
    parser.add_argument("--light", action="store_true", help="only models not marked heavy")
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="zoo build cache (default build/zoo)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default build/coverage)")
    parser.add_argument("--table", type=Path, help="print the table of a finished results.json(l) and exit")
    parser.add_argument("--resume", action="store_true", help="keep the rows already in --out, run the others")
    parser.add_argument("--pivot", action="store_true", help="print one row per model (the README table)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    profiles = tuple(p for p in args.profiles.split(",") if p)
    if args.worker:
        worker(args.worker.split(","), profiles, args.cache, args.results)
        return 0
    if args.table:
        text = args.table.read_text()
        rows = (
            json.loads(text)
            if args.table.suffix == ".json"
            else [r for r in map(json.loads, text.splitlines()) if "status" in r]
        )
    else:
        from model_zoo import ENTRIES, names

        chosen = args.models.split(",") if args.models else names(args.group, False if args.light else None)
        if not args.models:  # light models first, so that a partial run already covers the most
            chosen = sorted(chosen, key=lambda n: ENTRIES[n].heavy)
        rows = run_matrix(chosen, profiles, args.cache, args.out, args.resume)
    table = markdown(rows)
    short = pivot(rows)
    if not args.table:
        (args.out / "matrix.md").write_text(table)
        (args.out / "pivot.md").write_text(short)
    print(short if args.pivot else table)
    print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
