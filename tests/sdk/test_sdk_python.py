"""The generated Python SDK: real edge predictions, integrity, fallback vectors and the cloud path on the real
server."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sdk_support import HEAD_BYTES, MODEL_BYTES, cases, fallback_vectors, mismatches, quantize_cases

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


def test_bad_input_is_a_clear_error(python_sdk):
    model = python_sdk.DigitsClassifier()
    with pytest.raises(python_sdk.InvalidInput, match=r"must have shape \[1, 8, 8\].*got \[3, 8\]"):
        model.predict(np.zeros((3, 8), np.float32))
    with pytest.raises(python_sdk.InvalidInput, match=r"must hold numbers, got dtype <U1"):
        model.predict(np.full((1, 8, 8), "a"))
    with pytest.raises(python_sdk.InvalidInput, match=r"takes 1 input\(s\) \(serving_default_args_0\), got 2"):
        model.predict([np.zeros((1, 8, 8)), np.zeros((1, 8, 8))])


class _ScriptedCloud:
    """Answers ``outputs`` or fails with the next scripted outcome; counts calls, keeps what the first call got."""

    def __init__(self, policy, outcomes, outputs, counters, key):
        self.policy, self.outcomes, self.outputs, self.counters, self.key = (
            policy,
            list(outcomes),
            outputs,
            counters,
            key,
        )

    def infer(self, inputs, timeout_s):
        self.counters[f"{self.key}_calls"] += 1
        self.counters[f"{self.key}_sent"] = np.asarray(inputs[0]).reshape(-1).tolist()
        self.counters.setdefault(f"{self.key}_shapes", [list(np.shape(a)) for a in inputs])
        outcome = self.outcomes.pop(0)
        if outcome == "crash":
            raise ValueError("scripted client bug")  # not a CloudFailure: the SDK must not let it escape
        if outcome == "cancelled":
            raise self.policy.Cancelled("scripted cancellation")
        if outcome != "ok":
            raise self.policy.CloudFailure(outcome)
        return [np.array([self.outputs], np.float32)]


def _scripted_engine(script, outputs, counters, key):
    """An opener for a scripted engine that loads/runs per ``script`` and returns ``outputs``."""

    class Engine:
        def run(self, inputs):
            counters[f"{key}_runs"] += 1
            if script["run"] == "fail":
                raise RuntimeError("scripted run failure")
            if script["run"] == "crash":
                raise KeyError("scripted undocumented failure")
            return [np.array([outputs], np.float32)]

    def open_engine(model_bytes):
        if script["load"] == "fail":
            raise RuntimeError("scripted load failure")
        if script["load"] == "crash":
            raise SystemError("scripted undocumented failure")
        counters[f"{key}_loaded"] = True
        return Engine()

    return open_engine


def _array(given: dict) -> np.ndarray:
    """The caller's input as an array; values that do not fill the stated shape (no such array exists in Python)
    are passed flat, which the SDK must refuse just the same."""
    values = np.array(given["values"], np.float32)
    return values.reshape(given["shape"]) if values.size == np.prod(given["shape"]) else values


def _run_case(sdk, case) -> dict:
    policy = sdk.policy
    counters = {"edge_runs": 0, "cloud_calls": 0, "head_runs": 0, "head_loaded": False, "tail_calls": 0}

    def client(outcomes, outputs, key):
        return None if outcomes is None else _ScriptedCloud(policy, outcomes, outputs, counters, key)

    try:
        sdk.manifest.validate(case["manifest"])
    except sdk.manifest.ManifestError as exc:
        return {"manifest_error": exc.field}
    open_engine = _scripted_engine(case["edge"], case["edge_outputs"], counters, "edge")
    split = None
    if "head" in case:
        head = _scripted_engine(case["head"], case["head_outputs"], counters, "head")
        split = policy.SplitParts(HEAD_BYTES, head, client(case["tail"], case["tail_outputs"], "tail"))
    cloud = client(case["cloud"], case["cloud_outputs"], "cloud")
    predictor = policy.FallbackPredictor(case["manifest"], MODEL_BYTES, open_engine, cloud, split)
    counters["engine_loaded"] = counters.pop("edge_loaded", False)
    given = [_array(g) for g in case["given"]]
    try:
        r = predictor.predict(given)
    except (policy.PredictionError, policy.Cancelled, sdk.tensors.InvalidInput) as exc:
        kind = {policy.PredictionError: "no_result", policy.Cancelled: "cancelled"}.get(type(exc), "invalid_input")
        return {"source": None, "error": True, "error_kind": kind, **counters}
    fields = ("fallback_reason", "low_confidence", "cloud_error", "label", "confidence")
    return {"source": r.source, "error": False, **{f: getattr(r, f) for f in fields}, **counters}


VECTOR_NAMES = [v["name"] for v in fallback_vectors()["vectors"]]


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_fallback_vector(sdk_modules, sdk_build, name):
    case = next(c for c in cases(sdk_build.manifest) if c["name"] == name)
    assert mismatches(_run_case(sdk_modules, case), case["expect"]) == {}


@pytest.mark.parametrize("case", quantize_cases(), ids=lambda c: c["name"])
def test_quantizer_vector(sdk_modules, case):
    got = sdk_modules.tensors.quantize(case["values"], case["scale"], case["zero_point"], case["dtype"])
    assert (str(got.dtype), got.tolist()) == (case["dtype"], case["expect"])


def test_split_quantizer_is_the_compressors(sdk_modules):
    """The SDK's quantizer and the compressor's agree on ties and clipping (the tail was validated with the latter)."""
    from compressor.runtimes import quantize

    x = np.array([-100.0, -1.25, -0.75, -0.25, 0.0, 0.25, 0.75, 1.25, 63.75, 64.25, 100.0], np.float32)
    np.testing.assert_array_equal(sdk_modules.tensors.quantize(x, 0.5, -3, "int8"), quantize(x, 0.5, -3, np.int8))


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
    broken = copy.deepcopy(sdk_build.manifest)
    broken["model"]["below_gate"] = "yes"
    with pytest.raises(python_sdk.ManifestError, match="invalid at model/below_gate: 'yes' is not of type 'boolean'"):
        sdk_manifest.validate(broken)


def test_the_model_says_when_it_was_shipped_below_the_gate(python_sdk):
    model = python_sdk.DigitsClassifier()
    assert model.below_gate is False  # the digits build passes its gate
    model.manifest["model"]["below_gate"] = True
    assert model.below_gate is True
    del model.manifest["model"]["below_gate"]  # optional in the schema: older manifests read as not below
    assert model.below_gate is False


def _predictor(sdk, manifest: dict, client, model_bytes: bytes):
    from digits_classifier.engine import open_engine

    return sdk.policy.FallbackPredictor(manifest, model_bytes, open_engine, client)


def test_unreachable_cloud_returns_the_edge_result_marked_low_confidence(sdk_modules, sdk_build, digits_samples):
    from digits_classifier.cloud import OipCloudClient

    manifest = copy.deepcopy(sdk_build.manifest)
    manifest["policy"].update(confidence_threshold=1.0, timeout_ms=300, retries=1)
    client = OipCloudClient("127.0.0.1:9", manifest["cloud"])  # nothing listens on the discard port
    model_bytes = (sdk_build.out_dir / "model.tflite").read_bytes()
    result = _predictor(sdk_modules, manifest, client, model_bytes).predict([digits_samples[0][0]])
    assert (result.source, result.low_confidence, result.fallback_reason) == ("edge", True, "low_confidence")
    assert result.cloud_error in ("unavailable", "timeout")


def test_cloud_path_against_the_real_server_in_the_servers_process(sdk_modules, sdk_build, oip_server, digits_samples):
    """Mode cloud and low confidence through the project's gRPC server, whose own stubs (server/gen) are loaded in
    this very process: the SDK's private descriptor pool does not collide with them. Outputs equal onnxruntime's."""
    import onnxruntime as ort
    from digits_classifier.cloud import OipCloudClient

    import server.gen.inference.grpc_service_pb2  # noqa: F401 - the server's stubs, in protobuf's default pool

    x = digits_samples[0][:4]
    session = ort.InferenceSession(str(sdk_build.out_dir / "cloud" / "model.onnx"))
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    model_bytes = (sdk_build.out_dir / "model.tflite").read_bytes()
    for mode, threshold, reason in (("cloud", 0.6, "mode_cloud"), ("edge", 1.0, "low_confidence")):
        manifest = copy.deepcopy(sdk_build.manifest)
        manifest["policy"].update(mode=mode, confidence_threshold=threshold)
        predictor = _predictor(sdk_modules, manifest, OipCloudClient(oip_server, manifest["cloud"]), model_bytes)
        results = [predictor.predict([sample]) for sample in x]
        assert [(r.source, r.fallback_reason, r.cloud_error) for r in results] == [("cloud", reason, None)] * 4
        np.testing.assert_allclose(np.concatenate([r.outputs[0] for r in results]), expected, rtol=1e-5, atol=1e-5)


def test_predict_is_safe_from_threads(python_sdk, digits_samples):
    """Eight threads share one model (one LiteRT interpreter): every answer equals the single-threaded one."""
    from concurrent.futures import ThreadPoolExecutor

    model = python_sdk.DigitsClassifier()
    x = digits_samples[0][:16]
    alone = [model.predict(sample).outputs[0] for sample in x]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda sample: model.predict(sample).outputs[0], list(x) * 4))
    np.testing.assert_array_equal(np.concatenate(together), np.concatenate(alone * 4))


def test_tls_and_token_against_the_real_server(python_sdk, sdk_build, tls_server, tls_files, digits_samples):
    """TLS with a custom CA and a bearer token to the real server; a wrong token or an unknown CA is a cloud error
    whose message never contains the token."""
    from conftest import INFERENCE_TOKEN
    from digits_classifier.cloud import OipCloudClient

    x = digits_samples[0][0]
    good = OipCloudClient(tls_server, sdk_build.manifest["cloud"], INFERENCE_TOKEN, tls=True, ca_cert=tls_files["ca"])
    assert good.infer([x[None]], 30)[0].shape == (1, 10)
    assert INFERENCE_TOKEN not in repr(good)
    cases_ = (("wrong-" + INFERENCE_TOKEN, tls_files["ca"], "error"), (INFERENCE_TOKEN, None, "unavailable"))
    for token, ca, kind in cases_:
        client = OipCloudClient(tls_server, sdk_build.manifest["cloud"], token, tls=True, ca_cert=ca)
        with pytest.raises(python_sdk.CloudFailure) as failure:
            client.infer([x[None]], 30)
        assert failure.value.kind == kind and INFERENCE_TOKEN not in str(failure.value)


def test_tls_is_on_unless_the_endpoint_is_loopback(python_sdk):
    from digits_classifier import cloud

    assert [cloud.is_loopback(h) for h in ("localhost", "127.0.0.1", "127.8.9.1", "::1")] == [True] * 4
    assert [cloud.is_loopback(h) for h in ("example.com", "10.0.0.1", "192.168.1.2", "::2")] == [False] * 4
    assert cloud.split_endpoint("[::1]:8001") == ("::1", 8001)
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        cloud.split_endpoint("example.com")
    with pytest.raises(ValueError, match="a token is sent only over TLS or to a loopback endpoint"):
        cloud.channel_for("infer.example.com:443", False, None, "secret")
    assert "grpc.secure_channel" in _channel_kind(cloud, "infer.example.com:443", None)
    assert "grpc.insecure_channel" in _channel_kind(cloud, "127.0.0.1:8001", None)
    assert "grpc.insecure_channel" in _channel_kind(cloud, "infer.example.com:443", False)


def _channel_kind(cloud, endpoint: str, tls) -> str:
    """Which grpc constructor ``channel_for`` called (the channels themselves do not say)."""
    import unittest.mock

    with (
        unittest.mock.patch.object(cloud.grpc, "secure_channel", return_value="grpc.secure_channel") as secure,
        unittest.mock.patch.object(cloud.grpc, "insecure_channel", return_value="grpc.insecure_channel"),
    ):
        kind = cloud.channel_for(endpoint, tls, None, None)
    assert secure.call_count == (kind == "grpc.secure_channel")
    return kind


def test_image_helper_resizes_and_uses_luma(python_sdk):
    """A 16x16 RGB image becomes the 8x8 grey input: BT.601 luma, bilinear between pixel centres, scaled."""
    from digits_classifier import images

    model = python_sdk.DigitsClassifier()
    pre, spec = model.manifest["preprocessing"], model.manifest["inputs"][0]
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    rgb[:8, :8] = 255
    got = images.to_input(rgb, pre, spec)
    grey = 0.299 * 200 + 0.587 * 100 + 0.114 * 50
    assert got.shape == (1, 1, 8, 8)
    np.testing.assert_allclose(got[0, 0, 4:, 4:], grey * pre["pixel_scale"] + pre["pixel_offset"], rtol=1e-6)
    np.testing.assert_allclose(got[0, 0, :4, :4], 255 * pre["pixel_scale"] + pre["pixel_offset"], rtol=1e-6)
    assert model.predict_pixels(rgb).source == "edge"


def _install(sdk_dir, target) -> dict:
    """``pip install`` the SDK (not editable, no deps: they come from this interpreter) into ``target``; the env."""
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
            str(sdk_dir),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return {**os.environ, "PYTHONPATH": str(target)}


MODES = """
import json, sys
import numpy as np
import digits_classifier
from digits_classifier import DigitsClassifier
assert digits_classifier.__file__.startswith(sys.argv[1]), digits_classifier.__file__
from importlib.metadata import distribution, requires
from packaging.requirements import Requirement
for req in map(Requirement, requires("digits-classifier")):
    assert distribution(req.name).version in req.specifier, (req, distribution(req.name).version)
x = np.load(sys.argv[3])
for mode in sys.argv[4].split(","):
    model = DigitsClassifier(cloud_endpoint=sys.argv[2])
    model.manifest["policy"]["mode"] = mode
    for sample in x:
        r = model.predict(sample)
        print(json.dumps({"mode": mode, "source": r.source, "reason": r.fallback_reason, "label": r.label,
                          "outputs": r.outputs[0].tolist()}))
"""


def _run_installed(env, target, endpoint: str, x, cwd, modes: str) -> list[dict]:
    np.save(cwd / "x.npy", x)
    done = subprocess.run(
        [sys.executable, "-c", MODES, str(target), endpoint, str(cwd / "x.npy"), modes],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_installed_package_edge_and_cloud_modes_against_the_real_server(
    sdk_build, oip_server, tmp_path, digits_samples
):
    """pip-installed (not editable, out of the source tree): its requirements hold here, and the edge and cloud
    modes answer as LiteRT on model.tflite and onnxruntime on cloud/model.onnx do."""
    import onnxruntime as ort

    x = digits_samples[0][:3]
    env = _install(sdk_build.sdk_dirs["python"], tmp_path / "site")
    results = _run_installed(env, tmp_path / "site", oip_server, x, tmp_path, "edge,cloud")
    edge = TFLiteRunner(sdk_build.out_dir / "model.tflite").run({"x": x})[0]
    session = ort.InferenceSession(str(sdk_build.out_dir / "cloud" / "model.onnx"))
    cloud = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert [(r["mode"], r["source"]) for r in results] == [("edge", "edge")] * 3 + [("cloud", "cloud")] * 3
    np.testing.assert_allclose([r["outputs"][0] for r in results[:3]], edge, atol=1e-6)
    np.testing.assert_allclose([r["outputs"][0] for r in results[3:]], cloud, rtol=1e-5, atol=1e-5)


def test_installed_split_package_answers_in_split_mode(split_sdk_build, tail_server, tmp_path, digits_samples):
    """The pip-installed split SDK finds its bundled head (assets/split/) and the served tail answers: outputs equal
    onnxruntime on split/tail.onnx fed the head's int8 intermediate."""
    from compressor.runtimes import OnnxRunner, open_artifact, quantize

    manifest = split_sdk_build.manifest
    split = manifest["split"]
    x = digits_samples[0][:3]
    env = _install(split_sdk_build.sdk_dirs["python"], tmp_path / "site")
    assert (tmp_path / "site" / "digits_classifier" / "assets" / split["head"]["file"]).is_file()
    results = _run_installed(env, tmp_path / "site", tail_server, x, tmp_path, "split")
    head = open_artifact(split_sdk_build.out_dir / split["head"]["file"], split["head"]["format"])
    q = split["intermediate"]["quantization"]
    tail = OnnxRunner(split_sdk_build.out_dir / split["tail"]["file"])
    expected = []
    for sample in x:
        sent = quantize(head.run({"x": sample[None]})[0].astype(np.float32), q["scale"], q["zero_point"], np.int8)
        expected.append(tail.run({split["intermediate"]["name"]: sent})[0][0])
    assert [(r["source"], r["reason"]) for r in results] == [("split", None)] * 3, results
    np.testing.assert_allclose([r["outputs"][0] for r in results], expected, rtol=1e-5, atol=1e-5)


def test_installed_package_predicts_from_the_command_line(sdk_build, tmp_path, digits_samples):
    env = _install(sdk_build.sdk_dirs["python"], tmp_path / "site")
    sample = tmp_path / "x.npy"
    np.save(sample, digits_samples[0][0])
    done = subprocess.run(
        [sys.executable, "-m", "digits_classifier", "predict", str(sample)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = TFLiteRunner(sdk_build.out_dir / "model.tflite").run({"x": digits_samples[0][:1]})[0]
    assert (result["source"], result["label"]) == ("edge", str(expected.argmax()))
    np.testing.assert_allclose(result["outputs"][0], expected, atol=1e-6)


ONE_PROCESS = """
import json, sys
import numpy as np
import tritonclient.grpc as triton
sys.path[:0] = sys.argv[2:4]
from digits_classifier import DigitsClassifier
from other_classifier import OtherClassifier
x = np.load(sys.argv[4])
answers = {}
for cls in (DigitsClassifier, OtherClassifier):
    model = cls(cloud_endpoint=sys.argv[1])
    model.manifest["policy"]["mode"] = "cloud"
    answers[cls.__name__] = model.predict(x).outputs[0].tolist()
client = triton.InferenceServerClient(sys.argv[1])
tensor = triton.InferInput(sys.argv[8], list(x[None].shape), "FP32")
tensor.set_data_from_numpy(x[None])
result = client.infer(sys.argv[5], [tensor], model_version=sys.argv[6])
answers["tritonclient"] = result.as_numpy(sys.argv[7]).tolist()
print(json.dumps(answers))
"""


def test_two_sdks_and_tritonclient_in_one_process(sdk_build, oip_server, tmp_path, digits_samples):
    """tritonclient.grpc (which registers inference.* in protobuf's default pool) and two generated SDKs import and
    call the real server from one process; all three get onnxruntime's answer."""
    import onnxruntime as ort

    from sdkgen.render import PROTO, context_for, render_platform
    from sdkgen.spec import SdkSpec

    spec = SdkSpec(
        name="OtherClassifier",
        package="com.example.other",
        platforms=("python",),
        labels=tuple(sdk_build.manifest["labels"]),
    )
    manifest = {**sdk_build.manifest, "name": "OtherClassifier"}
    (tmp_path / "model-manifest.json").write_text(json.dumps(manifest))
    assets = {
        "model": sdk_build.out_dir / "model.tflite",
        "manifest": tmp_path / "model-manifest.json",
        "schema": sdk_build.sdk_dirs["python"] / "src/digits_classifier/assets/model-manifest.schema.json",
        "proto": PROTO,
    }
    render_platform("python", context_for(spec, manifest), assets, tmp_path / "other")
    x = digits_samples[0][0]
    np.save(tmp_path / "x.npy", x)
    cloud = sdk_build.manifest["cloud"]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            ONE_PROCESS,
            oip_server,
            str(sdk_build.sdk_dirs["python"] / "src"),
            str(tmp_path / "other" / "src"),
            str(tmp_path / "x.npy"),
            cloud["model_name"],
            cloud["model_version"],
            cloud["outputs"][0]["name"],
            cloud["inputs"][0]["name"],
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    session = ort.InferenceSession(str(sdk_build.out_dir / "cloud" / "model.onnx"))
    expected = session.run(None, {session.get_inputs()[0].name: x[None]})[0]
    assert sorted(answers) == ["DigitsClassifier", "OtherClassifier", "tritonclient"]
    for name, got in answers.items():
        np.testing.assert_allclose(np.reshape(got, expected.shape), expected, rtol=1e-5, atol=1e-5, err_msg=name)
