"""Write docs/coverage-matrix.md from the bench results in build/ (coverage, coverage-preview, onnx-routes)."""

import datetime
import subprocess
import sys
from pathlib import Path

root = Path(__file__).resolve().parents[2]


def table(path, pivot):
    args = [sys.executable, "bench/coverage.py", "--table", str(path)] + (["--pivot"] if pivot else [])
    out = subprocess.run(
        args,
        check=False,
        capture_output=True,
        text=True,
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    ).stdout
    lines = [line for line in out.splitlines() if line.startswith("|")]
    built = next((line for line in out.splitlines() if "cases built" in line), "")
    return "\n".join(lines) + "\n\n" + built.rstrip(".") + "."


main_rows = root / "build/coverage/all.jsonl"
preview = root / "build/coverage-preview/all.jsonl"
parts = [root / "build/coverage-preview/results.jsonl", root / "build/coverage-preview-det/results.jsonl"]
preview.write_text("".join(p.read_text() for p in parts if p.exists()))
routes = (root / "build/onnx-routes/table.md").read_text()
doc = f"""# Model coverage matrix (issue 12), as measured

Measured on {datetime.date.today()} on the 2-core build host (shared, loaded: latencies are noisy) against `main`
at `6969d74` (the pipeline as it stands), with the zoo of `tests/model_zoo.py` (zoo version 2). Printed by

```sh
PYTHONPATH=$PWD .venv/bin/python bench/coverage.py            # the whole matrix -> build/coverage/{{results.json,matrix.md,pivot.md}}
PYTHONPATH=$PWD .venv/bin/python bench/coverage.py --pivot --table build/coverage/results.json   # this first table again
PYTHONPATH=$PWD .venv/bin/python bench/coverage.py --preview-onnx-fix --models ppocr-cls,ppocr-rec,...  # the preview table
PYTHONPATH=$PWD .venv/bin/python bench/onnx_routes.py         # the ONNX route table
```

Each case is `compressor.compress(model, profile, out, data="data.npz")` with the CLI's defaults (gate: mean
cosine >= 0.99 without labels, accuracy drop <= 1 pt with them). `host` runs only for ONNX sources (the profile
that should ship ONNX when the TFLite route fails). Failure classes (F1...) are explained, with file:line and the
recommended fix, in `docs/coverage-findings.md`. Transformers `.pt2` files are loaded in a process that imported
`transformers.modeling_outputs` (F2: the CLI cannot load them at all).

## What builds today (README table)

{table(main_rows, True)}

## The same, case by case

Size ratio: selected artifact / submitted file. Cosine and top-1 agreement: the selected artifact against the
original on the zoo data (from report.json). Task metric: the original's and the selected artifact's (CER: lower
is better). p50: host latency of the selected artifact, and its ratio to the bare converter's fp32 output.

{table(main_rows, False)}

## Preview: the ONNX sources once `onnx_normalize` + `onnx_converters` are wired in

Same command with `--preview-onnx-fix`: each ONNX source is first normalised on its data
(`compressor.onnx_normalize.normalize`) and the extra onnx2torch converters are registered; the rest of the
pipeline is unchanged (so F5-F7, F12-F18 still show).

{table(preview, True)}

{table(preview, False)}

## ONNX -> PyTorch -> TFLite, step by step (`bench/onnx_routes.py`)

Max abs difference to onnxruntime at each step ("random weights": the light graphs again with seeded random
weights instead of their constant fills, so that the comparison means something).

{routes}
"""
(root / "docs/coverage-matrix.md").write_text(doc)
print("written", len(doc))
