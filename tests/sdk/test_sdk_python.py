"""The generated Python SDK: real edge predictions, integrity, fallback vectors and the cloud path on the real server."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sdk_support import HEAD_BYTES, MODEL_BYTES, cases, fallback_vectors, mismatches

from compressor.runtimes import TFLiteRunner


def test_edge_predictions_equal_the_compressors_runtime_outputs(python_sdk, sdk_build, digits_samples):
    x, y = digits_samples
    expected = TFLiteRunner(sdk_build.out_dir / "model.tflite").run({"x": x})[0]
    model = python_sdk.DigitsClassifier()
    results = [model.predict(sample) for sample in x]
    got = np.concatenate([r.outputs[0] for r in results])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert [r.source for r in results] == ["edge"] * len(x)
    assert [r.label for r in results] == [str(i) for i in expected.argmax(1)]
    assert np.mean([r.label == str(t) for r, t in zip(results, y)]) > 0.9
    threshold = model.manifest["policy"]["confidence_threshold"]
    for r in results:  # no cloud configured: an unsure answer stays on the device, marked as such
        assert r.latency_ms > 0
        assert (r.fallback_reason, r.low_confidence) == (
            (None, False) if r.confidence >= threshold else ("low_confidence", True)
        )


def test_tampered_model_is_never_run(python_sdk, sdk_build, tmp_path, digits_samples):
    tampered = tmp_path / "model.tflite"
    data = bytearray((sdk_build.out_dir / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    model = python_sdk.DigitsClassifier(model_path=tampered)
    assert model.edge_problem == "model_integrity_failed"
    assert model._predictor.engine is None  # never loaded, so never run
    with pytest.raises(python_sdk.PredictionError, match="model_integrity_failed.*not_configured"):
        model.predict(digits_samples[0][0])


def test_bad_input_shape_is_a_clear_error(python_sdk):
    with pytest.raises(ValueError, match=r"must have shape \[1, 8, 8\].*got \[3, 8\]"):
        python_sdk.DigitsClassifier().predict(np.zeros((3, 8), np.float32))


class _ScriptedCloud:
    """Answers ``outputs`` or fails with the next scripted outcome; counts calls and keeps the first input sent."""

    def __init__(self, outcomes, outputs, failure, counters, key):
        self.outcomes, self.outputs, self.failure, self.counters, self.key = (
            list(outcomes),
            outputs,
            failure,
            counters,
            key,
        )

    def infer(self, inputs, timeout_s):
        self.counters[f"{self.key}_calls"] += 1
        self.counters[f"{self.key}_sent"] = np.asarray(inputs[0]).reshape(-1).tolist()
        outcome = self.outcomes.pop(0)
        if outcome != "ok":
            raise self.failure(outcome)
        return [np.array([self.outputs], np.float32)]


def _scripted_engine(script, outputs, counters, key):
    """An opener for a scripted engine that loads/runs per ``script`` and returns ``outputs``."""

    class Engine:
        def run(self, inputs):
            counters[f"{key}_runs"] += 1
            if script["run"] == "fail":
                raise RuntimeError("scripted run failure")
            return [np.array([outputs], np.float32)]

    def open_engine(model_bytes):
        if script["load"] == "fail":
            raise RuntimeError("scripted load failure")
        counters[f"{key}_loaded"] = True
        return Engine()

    return open_engine


def _run_case(policy, case) -> dict:
    counters = {
        "edge_runs": 0,
        "cloud_calls": 0,
        "engine_loaded": False,
        "head_runs": 0,
        "head_loaded": False,
        "tail_calls": 0,
        "tail_sent": None,
    }

    def client(outcomes, outputs, key):
        return None if outcomes is None else _ScriptedCloud(outcomes, outputs, policy.CloudFailure, counters, key)

    open_engine = _scripted_engine(case["edge"], case["edge_outputs"], counters, "edge")
    split = None
    if "head" in case:
        split = policy.SplitParts(
            HEAD_BYTES,
            _scripted_engine(case["head"], case["head_outputs"], counters, "head"),
            client(case["tail"], case["tail_outputs"], "tail"),
        )
    cloud = client(case["cloud"], case["cloud_outputs"], "cloud")
    predictor = policy.FallbackPredictor(case["manifest"], MODEL_BYTES, open_engine, cloud, split)
    counters["engine_loaded"] = counters.pop("edge_loaded", False)
    try:
        r = predictor.predict([np.zeros((1, 2), np.float32)])
    except policy.PredictionError:
        return {"source": None, "error": True, **counters}
    return {
        "source": r.source,
        "error": False,
        "fallback_reason": r.fallback_reason,
        "low_confidence": r.low_confidence,
        "cloud_error": r.cloud_error,
        "label": r.label,
        "confidence": r.confidence,
        **counters,
    }


VECTOR_NAMES = [v["name"] for v in fallback_vectors()["vectors"]]


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_fallback_vector(python_sdk, sdk_build, name):
    from digits_classifier import manifest as sdk_manifest
    from digits_classifier import policy

    case = next(c for c in cases(sdk_build.manifest) if c["name"] == name)
    sdk_manifest.validate(case["manifest"])
    assert mismatches(_run_case(policy, case), case["expect"]) == {}


def test_manifest_is_validated_on_load(python_sdk, sdk_build):
    from digits_classifier import manifest as sdk_manifest

    broken = copy.deepcopy(sdk_build.manifest)
    del broken["policy"]["retries"]
    with pytest.raises(python_sdk.ManifestError, match="invalid at policy: 'retries' is a required property"):
        sdk_manifest.validate(broken)
    broken = copy.deepcopy(sdk_build.manifest)
    broken["labels"] = broken["labels"][:9]
    with pytest.raises(python_sdk.ManifestError, match="9 labels for 10 classes"):
        sdk_manifest.validate(broken)


# The SDK's own OIP stubs and the server's register the same proto symbols, so every SDK call that touches gRPC
# runs in a child process (as it would in an app), while the real server runs in this one.
CLOUD_CALL = """
import copy, json, sys
import numpy as np
from digits_classifier.cloud import OipCloudClient
from digits_classifier.engine import open_engine
from digits_classifier.manifest import load_bundled
from digits_classifier.policy import FallbackPredictor
endpoint, policy, model, samples = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], np.load(sys.argv[4])
manifest = load_bundled()
manifest["policy"].update(policy)
predictor = FallbackPredictor(manifest, open(model, "rb").read(), open_engine, OipCloudClient(endpoint, manifest["cloud"]))
for x in samples:
    r = predictor.predict([x[None]])
    print(json.dumps({"source": r.source, "fallback_reason": r.fallback_reason, "low_confidence": r.low_confidence,
                      "cloud_error": r.cloud_error, "label": r.label, "outputs": r.outputs[0].tolist()}))
"""


def _sdk_cloud_call(sdk_build, tmp_path, endpoint: str, policy: dict, x: np.ndarray) -> list[dict]:
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "PYTHONPATH": str(sdk_build.sdk_dirs["python"] / "src")}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CLOUD_CALL,
            endpoint,
            json.dumps(policy),
            str(sdk_build.out_dir / "model.tflite"),
            str(tmp_path / "x.npy"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_unreachable_cloud_returns_the_edge_result_marked_low_confidence(sdk_build, digits_samples, tmp_path):
    policy = {"confidence_threshold": 1.0, "timeout_ms": 300, "retries": 1}
    [result] = _sdk_cloud_call(sdk_build, tmp_path, "127.0.0.1:9", policy, digits_samples[0][:1])  # nothing listens
    assert (result["source"], result["low_confidence"], result["fallback_reason"]) == ("edge", True, "low_confidence")
    assert result["cloud_error"] in ("unavailable", "timeout")


def test_cloud_path_against_the_real_server(sdk_build, oip_server, digits_samples, tmp_path):
    """Mode cloud and low confidence through the project's gRPC server: outputs equal the fp32 ONNX model run here."""
    import onnxruntime as ort

    x = digits_samples[0][:4]
    session = ort.InferenceSession(str(sdk_build.out_dir / "cloud" / "model.onnx"))
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    results = _sdk_cloud_call(sdk_build, tmp_path, oip_server, {"mode": "cloud"}, x)
    assert [(r["source"], r["fallback_reason"], r["cloud_error"]) for r in results] == [
        ("cloud", "mode_cloud", None)
    ] * 4
    np.testing.assert_allclose(np.concatenate([r["outputs"] for r in results]), expected, rtol=1e-5, atol=1e-5)
    [low] = _sdk_cloud_call(sdk_build, tmp_path, oip_server, {"confidence_threshold": 1.0}, x[:1])
    assert (low["source"], low["fallback_reason"], low["label"]) == (
        "cloud",
        "low_confidence",
        str(expected[0].argmax()),
    )


def test_installed_package_predicts_from_the_command_line(sdk_build, tmp_path, digits_samples):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(sdk_build.sdk_dirs["python"]),
        ],
        check=True,
    )
    sample = tmp_path / "x.npy"
    np.save(sample, digits_samples[0][0])
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-m", "digits_classifier", "predict", str(sample)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = TFLiteRunner(sdk_build.out_dir / "model.tflite").run({"x": digits_samples[0][:1]})[0]
    assert (result["source"], result["label"]) == ("edge", str(expected.argmax()))
    np.testing.assert_allclose(result["outputs"][0], expected, atol=1e-6)
