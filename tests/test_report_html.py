"""report.html of real builds (digits, pruned + mixed precision, split) rendered in headless Chromium, its
structure pinned by a golden file, and ``sdkgen report`` rendering it again."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import browser
import pytest
from support import require

from compressor.api import compress
from compressor.options import CompressOptions
from compressor.profiles import Precision
from sdkgen.build import build
from sdkgen.cli import EXIT_BAD_INPUT, main
from sdkgen.spec import SdkSpec, read_labels

pytestmark = pytest.mark.slow  # builds or serves real models: not part of make test-fast

GOLDEN = Path(__file__).parent / "golden" / "report" / "digits-structure.json"
QUICK = {"latency_repeats": 5, "latency_warmup": 1}


@pytest.fixture(scope="module")
def digits_build(digits_files, tmp_path_factory):
    """``sdkgen build`` of the digits CNN for pixel-8 through the Python entry point (the demo's build)."""
    spec = SdkSpec(
        name="Digits",
        package="com.example.digits",
        platforms=("python",),
        labels=read_labels(digits_files / "labels.txt"),
    )
    out = tmp_path_factory.mktemp("report-digits") / "digits"
    build(
        digits_files / "model.pt2",
        "pixel-8",
        out,
        spec,
        data=digits_files / "data.npz",
        # by size: the golden's layer table is the selected artifact's, which "balanced" picks by host timings
        options=CompressOptions(**QUICK, select="size"),
    )
    return out


@pytest.fixture(scope="module")
def pruned_build(digits_files, tmp_path_factory):
    """``compress`` with structured pruning, distillation (fine-tuned) and a mixed-precision candidate: no manifest."""
    options = CompressOptions(
        prune="structured",
        sparsity=0.5,
        distill=True,
        finetune_epochs=4,
        mixed_precision=True,
        precisions=(Precision.FP32, Precision.INT8_DYNAMIC),
        **QUICK,
    )
    out = tmp_path_factory.mktemp("report-pruned") / "pruned"
    compress(digits_files / "model.pt2", "pixel-8", out, data=digits_files / "data.npz", options=options)
    return out


@pytest.fixture(scope="module")
def split_build(digits_files, tmp_path_factory):
    """``sdkgen build --mode split`` on the command line; the CLI must say where the report is."""
    out = tmp_path_factory.mktemp("report-split") / "split"
    argv = ["build", str(digits_files / "model.pt2"), "--profile", "raspberry-pi-zero-2w", "--uplink-mbps", "100"]
    argv += ["--rtt-ms", "5", "--data", str(digits_files / "data.npz"), "--labels", str(digits_files / "labels.txt")]
    argv += ["--platform", "python", "--precision", "int8-full", "--mode", "split", "--out", str(out)]
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    assert code == 0, printed.getvalue()
    assert f"report: {out.resolve() / 'report.html'}" in " ".join(printed.getvalue().split())
    return out


BUILDS = {"digits": "digits_build", "pruned": "pruned_build", "split": "split_build"}
# Charts each build must show (the candidates' two, the layers; then what its technique adds). A mixed-precision
# candidate adds its sensitivity chart only when sensitivities were measured (not when the smallest plan passed).
CHARTS = {
    "digits": {"size-fidelity", "latency", "layers"},
    "pruned": {"size-fidelity", "latency", "layers", "pruning", "fine-tuning"},
    "split": {"size-fidelity", "latency", "layers", "split"},
}


def _mixed_plan(report: dict) -> dict:
    plans = [
        a["technique"]["mixed_precision"] for a in report["artifacts"] if "mixed_precision" in (a["technique"] or {})
    ]
    return plans[0] if plans else {}


def _charts(kind: str, report: dict) -> set[str]:
    return CHARTS[kind] | ({"mixed"} if _mixed_plan(report).get("sensitivity_1_minus_cosine") else set())


def _expected_items(chart: str, report: dict, manifest: dict | None, table_rows: int) -> int:
    """How many things a chart must draw, counted from report.json / the manifest, not from the page."""
    artifacts = report["artifacts"]
    measured = [a for a in artifacts if a["error"] is None and a["size_bytes"]]
    variants = {a["variant"] for a in artifacts if a["variant"] and "mixed_precision" not in (a["technique"] or {})}
    mixed = _mixed_plan(report)
    return {
        "size-fidelity": len(measured),
        "latency": len(measured),
        "layers": min(table_rows, 40),
        "mixed": len(mixed.get("precision", {})),
        "pruning": len(variants),
        "fine-tuning": len(variants),
        "split": len(((manifest or {}).get("split") or {"plan": {}})["plan"].get("rows", [])),
    }[chart]


@pytest.mark.parametrize("kind", sorted(BUILDS))
def test_report_renders_in_chromium_offline_with_a_mark_per_item(kind, request, tmp_path):
    require(browser.available(), "Debian's chromium and the playwright package (the browser checks)")
    out = request.getfixturevalue(BUILDS[kind])
    report = json.loads((out / "report.json").read_text())
    manifest_path = out / "model-manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    url = (out / "report.html").resolve().as_uri()
    with browser.chromium() as chromium, browser.open_page(chromium, url, javascript=False) as (page, log):
        charts = page.evaluate(
            """() => [...document.querySelectorAll('figure.chart')].map(f => ({
                 name: f.dataset.chart, items: Number(f.dataset.items),
                 drawn: [...f.querySelectorAll('svg [id^="' + f.dataset.chart + '-item-"]')]
                   .map(e => Number(e.id.slice(f.dataset.chart.length + 6).split('-')[0])),
                 visible: f.querySelector('svg').getBoundingClientRect().height > 50 }))"""
        )
        layer_rows = page.locator("table.layers tbody tr").count()
        failed = page.locator("ul.failed li").count()
        shot = tmp_path / f"{kind}.png"
        page.screenshot(path=str(shot), full_page=True)
    assert log.console_errors == [], log.console_errors
    assert log.requests == [url], f"the page fetched more than itself: {log.requests}"
    assert {c["name"] for c in charts} == _charts(kind, report)
    for c in charts:
        expected = _expected_items(c["name"], report, manifest, layer_rows)
        assert c["items"] == expected and sorted(set(c["drawn"])) == list(range(expected)), c
        assert c["visible"], f"chart {c['name']} is not drawn at a readable size"
    assert failed == sum(1 for a in report["artifacts"] if a["error"] or not a["passed_gate"] or a["fit_problems"])
    assert shot.stat().st_size > 20_000


class _Structure(HTMLParser):
    """The report's skeleton: section ids and headings, table headers and row counts, charts and their items."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict] = []
        self._text: list[str] | None = None
        self._table: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append({"id": attrs["id"], "headings": [], "tables": [], "charts": [], "badges": []})
        elif tag in ("h2", "h3", "th") or (tag == "span" and "badge" in attrs.get("class", "")):
            self._text = []
        elif tag == "table":
            self._table = {"class": attrs.get("class", ""), "columns": [], "rows": 0}
        elif tag == "tr" and self._table is not None and self._table["columns"]:
            self._table["rows"] += 1
        elif tag == "figure":
            self.sections[-1]["charts"].append({"name": attrs["data-chart"], "items": int(attrs["data-items"])})

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        text = " ".join("".join(self._text or []).split())
        if tag in ("h2", "h3"):
            self.sections[-1]["headings"].append(text)
        elif tag == "th" and self._table is not None:
            self._table["columns"].append(text)
        elif tag == "span" and self._text is not None:
            self.sections[-1]["badges"].append(text)
        elif tag == "table" and self._table is not None:
            self.sections[-1]["tables"].append(self._table)
            self._table = None
        if tag in ("h2", "h3", "th", "span"):
            self._text = None


def _structure(html: str) -> list[dict]:
    """The page's shape. Badges are counted, not ordered: which candidate is selected follows host timings under the
    profile's balanced objective, and a loaded machine may reorder those."""
    parser = _Structure()
    parser.feed(html)
    for section in parser.sections:
        section["badges"].sort()
    return parser.sections


def test_digits_report_structure_matches_the_golden_file(digits_build):
    """Sections, headings, table columns and rows, charts and their item counts; no timings, no sizes."""
    structure = _structure((digits_build / "report.html").read_text())
    if os.environ.get("EDGEFORGE_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(structure, indent=1) + "\n")
    assert structure == json.loads(GOLDEN.read_text()), "regenerate on purpose with EDGEFORGE_UPDATE_GOLDEN=1"


def test_report_is_self_contained(digits_build, split_build):
    for out in (digits_build, split_build):
        html = (out / "report.html").read_text()
        assert "<script" not in html and "<link" not in html and "<img" not in html
        assert "src=" not in html and "@import" not in html and "url(http" not in html


def test_sdkgen_report_renders_the_same_page_again_and_prints_its_path(digits_build, tmp_path, capsys):
    copy = tmp_path / "digits"
    shutil.copytree(digits_build, copy)
    (copy / "report.html").unlink()
    assert main(["report", str(copy)]) == 0
    assert capsys.readouterr().out.strip() == str(copy / "report.html")
    assert (copy / "report.html").read_bytes() == (digits_build / "report.html").read_bytes()


def test_sdkgen_report_on_a_folder_without_a_report_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{tmp_path / 'report.json'} does not exist" in " ".join(err.split()) and "Traceback" not in err


def test_the_mixed_chart_marks_every_layer_with_a_measured_sensitivity():
    from compressor.bundle import report_charts
    from compressor.bundle.report_sections import Mixed, MixedLayer

    layers = (
        MixedLayer("fc1", "model/fc1", "int4", 4, {"int4": 0.002, "int8": 0.0001}),
        MixedLayer("fc2", "model/fc2", "int8", 8, {"int4": 0.05, "int8": 0.0004}),
        MixedLayer("head", "model/head", "fp16", 16, {"int8": 0.02}),
    )
    measured = Mixed("mixed.int8-dynamic.tflite", layers, {"int4": 1, "int8": 1, "fp16": 1}, 9, False)
    svg = report_charts.mixed(measured)
    assert measured.measured and svg.items == 3
    drawn = {int(m.split("-")[0]) for m in re.findall(r'id="mixed-item-([\d-]+)', svg.markup)}
    assert drawn == {0, 1, 2}
    unmeasured = Mixed("mixed.int8-dynamic.tflite", tuple(replace(x, sensitivity={}) for x in layers), {}, 1, False)
    assert not unmeasured.measured
