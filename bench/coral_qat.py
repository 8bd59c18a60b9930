"""Coral (integer-only) builds of zoo models on the user path, post-training int8 against the int8-qat candidate.

    PYTHONPATH=$PWD python bench/coral_qat.py mobilenet_v2-dyn [--zoo build/zoo] [--work build/coral-qat]

Runs what ``compressor.compress(model, "coral-edgetpu", data=...)`` runs (default options) in a kept work folder,
so that candidates that missed the gate can still be scored: prints one JSON line per int8-full candidate (mean
cosine and top-1 agreement on the held-out samples, the zoo's task metric on all its samples where it has one,
e.g. CER for the recogniser, and the QAT figures) and the build time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--zoo", default="build/zoo")
    parser.add_argument("--work", default="build/coral-qat")
    args = parser.parse_args()

    from model_zoo import build, feeds_for, import_output_types, reference_outputs

    from compressor.api import load_source, run_build
    from compressor.errors import GateFailedError
    from compressor.options import CompressOptions
    from compressor.runtimes import open_artifact

    import_output_types()
    zoo = build(args.model, Path(args.zoo))
    work = Path(args.work) / args.model
    work.mkdir(parents=True, exist_ok=True)
    source, samples = load_source(str(zoo.model), data=str(zoo.data))
    started = time.monotonic()
    try:
        from compressor.bundle.report import build_report

        built = run_build(source, samples, "coral-edgetpu", CompressOptions(latency_repeats=3), workdir=work)
        report, passed = build_report(built.inputs, built.results, {}, {}), True
    except GateFailedError as exc:
        report, passed = exc.report or {}, False
    print(json.dumps({"model": args.model, "passed_gate": passed, "build_seconds": round(time.monotonic() - started)}))
    feeds = feeds_for(zoo)
    original = zoo.task_metric(reference_outputs(zoo), feeds)
    files = {"int8-full.tflite": work / "convert/source/tflite/int8-full.tflite"}
    files["int8-qat.int8-full.tflite"] = work / "qat/int8-qat/int8-qat.tflite"
    for artifact in report.get("artifacts", []):
        if artifact["precision"] != "int8-full":
            continue
        metrics = artifact["metrics"] or {}
        line = {
            "name": artifact["name"],
            "error": artifact["error"],
            "passed_gate": artifact["passed_gate"],
            "fit_problems": artifact["fit_problems"],
            "cosine_mean": metrics.get("cosine_mean"),
            "top1_agreement": metrics.get("top1_agreement"),
            "qat": (artifact["technique"] or {}).get("qat"),
        }
        path = files.get(artifact["name"])
        if original is not None and artifact["error"] is None and path is not None and path.exists():
            line["task_metric"] = zoo.task_metric(open_artifact(path, "tflite").run(feeds), feeds)
            line["original_task_metric"] = original
        print(json.dumps(line))


if __name__ == "__main__":
    main()
