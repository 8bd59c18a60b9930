"""`sdkgen compress` and `sdkgen profiles` end to end, every precision x format, the gate, the report contract."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from compressor import CompressOptions, GateFailedError, Precision, compress
from compressor.analysis import _peak, onnx_figures, torch_macs
from compressor.data import SampleData
from compressor.holdout import holdout
from compressor.runtimes import open_artifact
from sdkgen.cli import EXIT_BAD_INPUT, EXIT_GATE_FAILED, main

REPORT_ARTIFACT_KEYS = {
    "path",
    "format",
    "precision",
    "size_bytes",
    "sha256",
    "host_latency_ms",
    "estimated_device_latency_ms",
    "metrics",
    "passed_gate",
}
METRIC_KEYS = {"accuracy", "accuracy_drop", "top1_agreement", "cosine_min", "cosine_mean", "max_abs_error"}


@pytest.fixture(scope="module")
def host_build(digits_files, tmp_path_factory):
    """One build for the host profile: all four precisions in both formats."""
    out = tmp_path_factory.mktemp("host") / "out"
    return compress(
        digits_files / "model.pt2",
        "host",
        out,
        data=digits_files / "data.npz",
        options=CompressOptions(latency_repeats=5),
    )


@pytest.mark.slow
def test_every_precision_and_format_runs_and_stays_close(host_build, digits_files):
    report = host_build.report
    assert {(a["format"], a["precision"]) for a in report["artifacts"]} == {
        (f, p.value) for f in ("tflite", "onnx") for p in Precision
    }
    data = np.load(digits_files / "data.npz")
    _, held = holdout(SampleData({"x": data["x"]}, data["labels"]), 0.3, 0)  # the validation part of --data
    x, labels = data["x"][held], data["labels"][held]
    assert report["data"]["validation_samples"] == len(held)
    for artifact in report["artifacts"]:
        assert artifact["error"] is None, artifact
        m = artifact["metrics"]
        assert set(m) >= METRIC_KEYS
        floor = 0.999 if artifact["precision"] in ("fp32", "fp16") else 0.95  # int8 on a width-8 CNN: looser
        assert m["top1_agreement"] >= floor and m["cosine_mean"] >= floor and m["accuracy_drop"] <= 2.5
        # the recorded metrics come from the real runtime: re-run the stored artifact and compare
        outputs = open_artifact(host_build.out_dir / artifact["path"], artifact["format"]).run({"x": x})
        assert np.mean(outputs[0].argmax(1) == labels) == pytest.approx(m["accuracy"])
    size = {(a["format"], a["precision"]): a["size_bytes"] for a in report["artifacts"]}
    for fmt in ("tflite", "onnx"):
        assert size[fmt, "int8-dynamic"] < size[fmt, "fp16"] < size[fmt, "fp32"]
        assert size[fmt, "int8-full"] < size[fmt, "fp16"]


@pytest.mark.slow
def test_report_contract(host_build):
    report = json.loads((host_build.out_dir / "report.json").read_text())
    assert report["profile"] == "host"
    assert {"path", "format", "sha256", "size_bytes", "params"} <= set(report["source"])
    assert report["source"]["params"] == sum(p.numel() for p in __import__("model").DigitsCNN(width=8).parameters())
    for artifact in report["artifacts"]:
        assert set(artifact) >= REPORT_ARTIFACT_KEYS
        assert not artifact["path"].startswith("/")
        assert (host_build.out_dir / artifact["path"]).is_file()
        assert set(artifact["host_latency_ms"]) == {"p50", "p90"} and artifact["host_latency_ms"]["p50"] > 0
        assert artifact["host_latency_ms"]["p50"] == artifact["estimated_device_latency_ms"]  # host: measured
        assert artifact["peak_activation_bytes"] > 0 and artifact["macs"] > 0
    assert 0 <= report["selected"] < len(report["artifacts"])
    assert {"torch", "tensorflow", "litert-torch", "ai-edge-litert", "onnx", "onnxruntime"} <= set(report["versions"])
    assert all(report["versions"][k] for k in ("torch", "onnxruntime", "ai-edge-litert"))
    assert "host" in (host_build.out_dir / "summary.txt").read_text()


def test_cli_compress_writes_artifact_report_and_table(digits_files, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "compress",
            str(digits_files / "model.pt2"),
            "--profile",
            "pixel-8",
            "--data",
            str(digits_files / "data.npz"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["outputs"] == {"tflite": "model.tflite"} and (out / "model.tflite").is_file()
    assert not (out / "model.onnx").exists()
    assert "pixel-8" in capsys.readouterr().out
    # a second run replaces the earlier output in one piece
    assert (
        main(
            [
                "compress",
                str(digits_files / "model.pt2"),
                "--profile",
                "pixel-8",
                "--precision",
                "fp16",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads((out / "report.json").read_text())["artifacts"][0]["precision"] == "fp16"


def _coral_strict(digits_files, tmp_path, *flags) -> list[str]:
    """digits on coral-edgetpu (int8-full only) with a gate its int8 cannot meet."""
    np.savez(tmp_path / "unlabeled.npz", x=np.load(digits_files / "data.npz")["x"])
    return [
        "compress",
        str(digits_files / "model.pt2"),
        "--profile",
        "coral-edgetpu",
        "--min-cosine",
        "0.99999",
        "--data",
        str(tmp_path / "unlabeled.npz"),
        *flags,
    ]


def test_gate_failure_exits_nonzero_names_best_and_writes_nothing(digits_files, tmp_path, capsys):
    out = tmp_path / "gate"
    code = main([*_coral_strict(digits_files, tmp_path, "--strict-gate"), "--out", str(out)])
    assert code == EXIT_GATE_FAILED
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "no tflite candidate for profile 'coral-edgetpu' passes the gate (mean cosine >= 0.99999, top-1 kept on >= 99% of classifier outputs)"
        in err
    )
    assert "the best, int8-full.tflite, failed the gate with cosine mean 0.99" in err
    assert re.search(r"top-1 agreement [01]\.\d{4} \(\d+ changed\)", err)
    assert not out.exists() and not list(tmp_path.glob(".gate*"))


def test_an_integer_only_profile_ships_its_closest_candidate_below_the_gate_and_says_so(digits_files, tmp_path, capsys):
    """An Edge TPU runs full-integer models or nothing: without --strict-gate the closest int8-full candidate ships,
    marked below the gate in report.json, summary.txt and a warning on the terminal."""
    out = tmp_path / "below"
    assert main([*_coral_strict(digits_files, tmp_path), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    choice = report["selection"]["by_format"]["tflite"]
    shipped = report["artifacts"][report["selected_by_format"]["tflite"]]
    assert choice["below_gate"] and choice["usable"] == 0 and not shipped["passed_gate"]
    assert shipped["precision"] == "int8-full" and not shipped["fit_problems"] and (out / "model.tflite").exists()
    assert "shipped BELOW the accuracy gate (mean cosine >= 0.99999" in choice["sentence"]
    assert f"cosine mean {shipped['metrics']['cosine_mean']:.6f}" in choice["sentence"]
    err = " ".join(capsys.readouterr().err.split())
    assert "warning (tflite): int8-full.tflite shipped BELOW the accuracy gate" in err and "--strict-gate" in err
    summary = " ".join((out / "summary.txt").read_text().split())
    assert "shipped below the gate" in summary and "warning (tflite): int8-full.tflite shipped BELOW" in summary


def test_an_sdk_built_below_the_gate_says_so_in_its_manifest(digits_files, tmp_path, capsys):
    """``sdkgen build`` for coral with a gate int8 cannot meet: the bundled manifest marks the model below the gate,
    and the Python SDK's own schema check accepts it."""
    out = tmp_path / "sdk"
    argv = ["build", *_coral_strict(digits_files, tmp_path)[1:], "--platform", "python", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    manifest = json.loads((out / "model-manifest.json").read_text())
    assert manifest["model"]["below_gate"] is True and manifest["model"]["precision"] == "int8-full"
    bundled = next((out / "python").rglob("assets/model-manifest.json"))
    assert json.loads(bundled.read_text())["model"]["below_gate"] is True
    import jsonschema

    schema = json.loads(bundled.with_name("model-manifest.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(manifest)
    page = " ".join((out / "report.html").read_text().split())
    assert '<p class="below-gate"><strong>Shipped below the accuracy gate</strong>' in page


@pytest.mark.slow
def test_gate_failure_api_carries_every_candidate(digits_files, tmp_path):
    with pytest.raises(GateFailedError, match=r"accuracy drop <= 0.0 pt|mean cosine") as info:
        compress(
            digits_files / "model.pt2",
            "pixel-8",
            tmp_path / "o",
            options=CompressOptions(min_cosine=1.0, precisions=(Precision.INT8_FULL,)),
        )
    assert info.value.report["artifacts"][0]["metrics"]["cosine_mean"] < 1.0


def test_cli_bad_input_is_one_clear_line(digits_files, tmp_path, capsys):
    assert (
        main(["compress", str(digits_files / "model.pt2"), "--profile", "pixel-9", "--out", str(tmp_path / "o")])
        == EXIT_BAD_INPUT
    )
    err = capsys.readouterr().err
    assert "unknown hardware profile 'pixel-9'" in err and "Traceback" not in err


def test_profiles_command_lists_every_profile(capsys):
    from compressor.profiles import all_profiles

    assert main(["profiles"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in all_profiles())


def test_help_on_every_command():
    from sdkgen.commands import commands

    for name in [None, *commands.names()]:
        args = [sys.executable, "-m", "sdkgen.cli", *([name] if name else []), "--help"]
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "usage: sdkgen" in done.stdout, (name, done.stderr[-500:])


def test_liveness_peak_and_macs():
    # a -> op0 -> b -> op1 -> c, plus a read again by op1: a, b live together, then b, c
    assert _peak([([0], [1]), ([0, 1], [2])], {0: 10, 1: 20, 2: 5}, [0]) == 35
    import torch

    assert torch_macs(torch.nn.Linear(16, 4), (torch.zeros(1, 16),)) == 64


@pytest.mark.slow
def test_onnx_figures_count_int8_activations_smaller(host_build):
    by = {(a["format"], a["precision"]): a for a in host_build.report["artifacts"]}
    fp32 = onnx_figures(host_build.out_dir / by["onnx", "fp32"]["path"])
    assert fp32.peak_activation_bytes == by["onnx", "fp32"]["peak_activation_bytes"]
    assert by["tflite", "int8-full"]["peak_activation_bytes"] < by["tflite", "fp32"]["peak_activation_bytes"]


def test_the_cloud_graph_reuses_the_builds_onnx_export_and_takes_any_batch(digits_files, tmp_path):
    """The cloud model copies the fp32 graph the ONNX conversion exported (dynamic batch) instead of exporting again;
    a profile with static shapes gets a fresh dynamic-batch export."""
    import onnx
    import onnxruntime as ort

    from compressor.api import load_source, run_build
    from compressor.bundle.writer import write_cloud_model
    from compressor.profiles import Format

    source, data = load_source(digits_files / "model.pt2", data=digits_files / "data.npz")
    build = run_build(
        source, data, "host", CompressOptions(precisions=(Precision.FP32,), latency_repeats=3), workdir=tmp_path
    )
    base = build.results.bases[("", Format.ONNX)]
    exported = onnx.load(str(base))
    onnx.helper.set_model_props(exported, {"marker": "the conversion's export"})  # tells a copy from a fresh export
    onnx.save(exported, str(base))
    cloud = write_cloud_model(build.inputs, build.results, tmp_path / "bundle")
    props = {p.key: p.value for p in onnx.load(str(cloud)).metadata_props}
    assert props == {"marker": "the conversion's export"}
    x = np.load(digits_files / "data.npz")["x"][:3]
    assert ort.InferenceSession(str(cloud)).run(None, {"x": x})[0].shape == (3, 10)
