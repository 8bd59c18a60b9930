"""Model coverage (issue 12): real third-party models, exported the way users export them, through the user path.

A representative slice of tests/model_zoo.py x profiles, asserting the issue's done-when criteria. The root
causes of what still misses an accuracy gate (the Edge TPU's int8, shipped below the gate and marked so) are the
constants below (details and fixes in docs/coverage-findings.md). The full matrix is ``bench/coverage.py``.
"""

from __future__ import annotations

import io
import os
import re
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
from model_zoo import FONT_DIR, build, feeds_for, import_output_types, reference_outputs
from support import require

import compressor
from compressor.runtimes import open_artifact

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Why int8 misses the gate on the Edge TPU (docs/coverage-findings.md F6, F12): these ship marked below it.
INT8_MOBILENET = (
    "F6: int8-full HF MobileNetV2 (depthwise + ReLU6) on coral: post-training int8 mean cosine 0.847, top-1 "
    "agreement 0.4 on the 5 held-out photos; with --qat-steps 300 (PT2E QAT on the 11 training photos; off by "
    "default) 0.812 / 0.8; both under the 0.99 gates"
)
KERAS_MOBILENET = (
    "F6: int8-full Keras MobileNetV2 reaches mean cosine 0.985 on coral (under the 0.99 gate; 0.977 when F6 was "
    "measured); QAT needs a PyTorch module and Keras sources have none (with --qat-steps its int8-qat candidate fails with that)"
)
INT8_RECOGNISER = (
    "F6/F12: PP-OCRv4 rec int8-full on coral: mean cosine 0.952, per-position top-1 agreement 0.98 (CER 0.41 % vs "
    "the original's 0.83 %); its BATCH_MATMULs are rewritten as MUL + SUM for the Edge TPU's list; with "
    "--qat-steps its int8-qat candidate comes out of litert-torch with a float32 output (its last op left unquantized), so it is refused"
)
INT8_RESNET = (
    "F6: resnet-dyn fits the Edge TPU allow-list since F7's rewrite (zero PAD + pool, no PADV2) but misses the gate: "
    "post-training int8-full mean cosine 0.988, top-1 agreement 0.8 (4 of 5 held-out photos); with --qat-steps 300 0.984 / 0.8"
)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    import_output_types()  # a Python user who exported in this process has them registered (finding F2)
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture
def fonts():
    require(FONT_DIR.is_dir(), f"DejaVu fonts in {FONT_DIR} (Debian fonts-dejavu-core) render the OCR zoo's text")


def _compress(zoo_model, profile, tmp_path, **options):
    from compressor import CompressOptions

    return compressor.compress(
        zoo_model.model,
        profile,
        tmp_path / "out",
        data=zoo_model.data,
        options=CompressOptions(latency_repeats=3, latency_warmup=1, **options),
    )


def _selected(result, fmt):
    report = result.report
    return report["artifacts"][report["selected_by_format"][fmt]]


# ------------------------------------------------- the CI slice (minutes; the fastest of it also in make test-fast)


@pytest.mark.slow  # a whole real-model build: the full suite's, not the edit-test loop's
def test_dynamic_batch_resnet_builds_for_pixel_8(zoo, tmp_path):
    result = _compress(build("resnet-dyn", zoo), "pixel-8", tmp_path)
    assert _selected(result, "tflite")["metrics"]["cosine_mean"] >= 0.99


@pytest.mark.slow
def test_batch_fixed_at_1_resnet_builds_for_an_onnx_profile(zoo, tmp_path):
    result = _compress(build("resnet", zoo), "jetson-orin-nano", tmp_path)
    assert _selected(result, "onnx")["metrics"]["cosine_mean"] >= 0.99


@pytest.mark.parametrize("name", ["ppocr-cls", "onnx-squeezenet"])
def test_onnx_sources_with_constant_weights_build_for_the_onnx_profile(zoo, fonts, tmp_path, name):
    result = _compress(build(name, zoo), "jetson-orin-nano", tmp_path)
    assert _selected(result, "onnx")["metrics"]["cosine_mean"] >= 0.99


def test_silero_vad_sequence_builds_for_the_onnx_profile(zoo, tmp_path):
    zoo_model = build("silero-vad-sequence", zoo)
    result = _compress(zoo_model, "jetson-orin-nano", tmp_path)
    chosen = _selected(result, "onnx")
    assert chosen["metrics"]["cosine_mean"] >= 0.99
    feeds = feeds_for(zoo_model)
    outputs = open_artifact(result.out_dir / chosen["path"], "onnx").run(feeds)
    assert zoo_model.task_metric(outputs, feeds) >= zoo_model.task_metric(reference_outputs(zoo_model), feeds) - 1


@pytest.mark.slow  # a whole real-model build: the full suite's, not the edit-test loop's
def test_keras_mobilenet_v2_builds_for_pixel_8(zoo, tmp_path):
    result = _compress(build("keras-mobilenet-v2", zoo), "pixel-8", tmp_path)
    assert _selected(result, "tflite")["metrics"]["cosine_mean"] >= 0.99


@pytest.mark.slow  # a whole real-model build: the full suite's, not the edit-test loop's
def test_host_ships_onnx_when_the_tflite_route_fails(zoo, tmp_path):
    result = _compress(build("resnet-onnx", zoo), "host", tmp_path)
    assert "onnx" in result.report["outputs"]


def test_a_failing_case_ends_in_a_message_not_a_traceback(zoo, fonts, tmp_path):
    from sdkgen.cli import main

    zoo_model = build("ppocr-cls", zoo)
    argv = ["compress", str(zoo_model.model), "--profile", "jetson-orin-nano", "--data", str(zoo_model.data)]
    buffer = io.StringIO()
    with redirect_stdout(buffer), redirect_stderr(buffer):
        try:
            status = main([*argv, "--out", str(tmp_path / "out")])
        except Exception as exc:  # what a user sees: the interpreter prints the traceback
            status, _ = 1, buffer.write(f"Traceback (most recent call last):\n{type(exc).__name__}: {exc}")
    assert "Traceback" not in buffer.getvalue()
    assert status == 0 or re.search(r"error: .+", buffer.getvalue())


@pytest.mark.slow
def test_pruning_an_onnx_source_for_an_onnx_profile_ships_the_pruned_graph(zoo, tmp_path):
    """The issue's regression test: the pruned variant's ONNX artifact must hold the pruned weights."""
    import onnx
    from onnx import numpy_helper

    options = {"prune": "unstructured", "sparsity": 0.5, "finetune_epochs": 1}
    result = _compress(build("resnet-onnx", zoo), "jetson-orin-nano", tmp_path, **options)
    pruned = [a for a in result.report["artifacts"] if a["variant"] and a["precision"] == "fp32" and a["path"]]
    assert pruned
    graph = onnx.load(str(result.out_dir / pruned[0]["path"])).graph
    weights = [numpy_helper.to_array(t) for t in graph.initializer if len(t.dims) > 1]
    assert np.mean(np.concatenate([w.ravel() == 0 for w in weights])) >= 0.4


# ---------------------------------------------------------------------------- the done-when criteria (slow)

VISION = ["mobilenet_v2", "resnet", "deit", "vit", "mobilevit", "convnext"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        *[*VISION, "bert", "whisper-encoder"],
        *(f"{n}-dyn" for n in VISION),
    ],
)
def test_transformers_models_build_for_pixel_8_exported_either_way(zoo, tmp_path, name):
    result = _compress(build(name, zoo), "pixel-8", tmp_path)
    assert _selected(result, "tflite")["metrics"]["cosine_mean"] >= 0.99


@pytest.mark.slow
def test_ppocr_recogniser_builds_for_pixel_8_within_a_point_of_cer(zoo, fonts, tmp_path):
    zoo_model = build("ppocr-rec", zoo)
    result = _compress(zoo_model, "pixel-8", tmp_path)
    feeds = feeds_for(zoo_model)
    outputs = open_artifact(result.out_dir / result.report["outputs"]["tflite"], "tflite").run(feeds)
    original = zoo_model.task_metric(reference_outputs(zoo_model), feeds)
    assert zoo_model.task_metric(outputs, feeds) <= original + 1.0


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "ppocr-cls",  # pretrained; its hard sigmoids fit the Edge TPU's list since the RELU6 rewrite (F12)
        "mobilenet_v2-dyn",  # below the gate (INT8_MOBILENET): shipped, marked so
        "ppocr-rec",  # its attention's matmuls as MUL + SUM; below the gate (INT8_RECOGNISER): shipped, marked so
        "resnet-dyn",  # below the gate (INT8_RESNET): shipped, marked so
        "mobilevit",  # its softmaxes over one patch are constants (F12): passes the gate
        "vit-dyn",  # transformers' all-true attention mask leaves it the MUL + SUM rewrite (F12); below the gate (F14)
    ],
)
def test_coral_builds_fully_integer(zoo, fonts, tmp_path, name):
    """Every tensor integer and every op on the Edge TPU's list; a model whose int8 misses the accuracy gate still
    ships (an Edge TPU runs nothing else), marked below the gate with its figures."""
    result = _compress(build(name, zoo), "coral-edgetpu", tmp_path)
    _assert_ships_fully_integer(result)
    if name in ("ppocr-cls", "mobilevit"):
        assert _selected(result, "tflite")["passed_gate"]


def _assert_ships_fully_integer(result) -> None:
    chosen = _selected(result, "tflite")
    tensors = chosen["io"]["inputs"] + chosen["io"]["outputs"]
    assert all(np.issubdtype(np.dtype(t["dtype"]), np.integer) for t in tensors) and not chosen["fit_problems"]
    choice = result.report["selection"]["by_format"]["tflite"]
    assert choice["below_gate"] is not chosen["passed_gate"]
    if choice["below_gate"]:
        assert f"cosine mean {chosen['metrics']['cosine_mean']:.6f}" in choice["sentence"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["onnx-resnet50", "onnx-shufflenet", "onnx-inception-v1", "onnx-densenet121"])
def test_onnx_reference_graphs_build_for_the_onnx_profile(zoo, tmp_path, name):
    result = _compress(build(name, zoo), "jetson-orin-nano", tmp_path)
    assert "onnx" in result.report["outputs"]


@pytest.mark.slow
def test_silero_vad_onnx_builds_for_the_onnx_profile(zoo, tmp_path):
    """silero_vad.onnx as the package runs it: each sample is a (chunk, state [2, 1, 128], rate) triple, the state
    and the scalar rate given whole under the sample axis; the VAD decisions stay those of the original."""
    zoo_model = build("silero-vad-onnx", zoo)
    result = _compress(zoo_model, "jetson-orin-nano", tmp_path)
    shipped = _selected(result, "onnx")
    assert shipped["metrics"]["cosine_mean"] >= 0.99
    feeds = feeds_for(zoo_model)
    outputs = open_artifact(result.out_dir / result.report["outputs"]["onnx"], "onnx").run(feeds)
    assert outputs[1].shape == (len(feeds["state"]), 2, 1, 128)  # the next state, one whole per sample
    assert zoo_model.task_metric(outputs, feeds) >= zoo_model.task_metric(reference_outputs(zoo_model), feeds) - 1


@pytest.mark.slow
def test_keras_mobilenet_v2_builds_for_coral(zoo, tmp_path):
    """Fully integer on the Edge TPU's ops; below the 0.99 gate today (KERAS_MOBILENET), so marked as such."""
    _assert_ships_fully_integer(_compress(build("keras-mobilenet-v2", zoo), "coral-edgetpu", tmp_path))


@pytest.mark.slow
def test_coral_refuses_an_int8_candidate_that_rounds_every_output_to_zero(zoo, tmp_path):
    """The onnx wheel's squeezenet (generated weights) has near-zero outputs, which its int8-full candidate rounds to
    zero: no closer to the original than all zeros, so even an integer-only profile does not ship it below the gate
    (docs/coverage-findings.md F18), and the failure says why."""
    from compressor.errors import GateFailedError

    with pytest.raises(GateFailedError, match="no closer to the original's than all zeros") as info:
        _compress(build("onnx-squeezenet", zoo), "coral-edgetpu", tmp_path)
    int8 = next(a for a in info.value.report["artifacts"] if a["precision"] == "int8-full")
    assert int8["metrics"]["cosine_mean"] == 0.0 and not int8["fit_problems"]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_minilm_as_users_export_it_builds_for_pixel_8(zoo, tmp_path):
    zoo_model = build("minilm", zoo)
    result = _compress(zoo_model, "pixel-8", tmp_path)
    feeds = feeds_for(zoo_model)
    outputs = open_artifact(result.out_dir / result.report["outputs"]["tflite"], "tflite").run(feeds)
    assert _selected(result, "tflite")["metrics"]["cosine_mean"] >= 0.99
    assert zoo_model.task_metric(outputs, feeds) >= zoo_model.task_metric(reference_outputs(zoo_model), feeds) - 1


@pytest.mark.slow  # a whole real-model build: the full suite's, not the edit-test loop's
def test_a_transformers_program_with_its_batch_fixed_builds_through_the_cli(zoo, tmp_path):
    """The ordinary export (``torch.export.export(m, (x,))``, batch fixed at 1) of a transformers ResNet, through
    ``sdkgen compress`` in a fresh process that never imported transformers: the program's output classes are
    registered from the allow-list, the model runs one sample at a time, and the report says so."""
    import json
    import subprocess
    import sys

    zoo_model = build("resnet", zoo)
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sdkgen.cli",
            "compress",
            str(zoo_model.model),
            "--profile",
            "pixel-8",
            "--data",
            str(zoo_model.data),
            "--precision",
            "fp32",
            "--precision",
            "int8-dynamic",
            "--latency-repeats",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["constraints"]["batch"] == "fixed at 1"
    assert report["artifacts"][report["selected_by_format"]["tflite"]]["metrics"]["cosine_mean"] >= 0.99
