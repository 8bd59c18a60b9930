"""The generated Kotlin SDK on the JVM, compiled with kotlinc against Debian's grpc-java/protobuf-java: the fallback
vectors, and the cloud and split paths against the real server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sdk_support import cases, mismatches, quantize_cases, require

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
JARS = Path("/usr/share/java")
CLASSPATH_JARS = (
    "grpc-api",
    "grpc-context",
    "grpc-core",
    "grpc-netty",
    "grpc-protobuf",
    "grpc-protobuf-lite",
    "grpc-stub",
    "protobuf",
    "guava",
    "perfmark-api",
    "netty-buffer",
    "netty-codec",
    "netty-codec-http",
    "netty-codec-http2",
    "netty-common",
    "netty-handler",
    "netty-resolver",
    "netty-transport",
    "netty-codec-socks",
    "netty-handler-proxy",
    "geronimo-annotation-1.3-spec",
    "error_prone_annotations",
    "com.android.json",  # Android's own org.json (Debian libandroid-json-java), which the SDK parses with
    "netty-tcnative",  # OpenSSL for grpc-netty's TLS (Debian's netty has no JDK ALPN)
)
TCNATIVE = Path("/usr/lib/x86_64-linux-gnu/jni/libnetty-tcnative.so")
TOOLS = ("javac", "java", "protoc", "grpc_java_plugin")
# A current Kotlin compiler: JetBrains' distribution as the npm package kotlin-compiler (.ci/run installs it here).
CURRENT_KOTLIN = Path(
    os.environ.get("EDGEFORGE_KOTLIN_HOME", ROOT / "build/tools/kotlin-compiler/node_modules/kotlin-compiler")
)


@dataclass(frozen=True)
class Kotlin:
    """A Kotlin compiler and the runtime jars that go with it."""

    name: str
    kotlinc: Path
    runtime: tuple[Path, ...]  # stdlib and kotlinx-coroutines-core built for it


def _toolchain(name: str) -> Kotlin:
    if name == "debian":  # Debian's kotlin 1.3.31, libkotlinx-coroutines-java 1.0.1 (which needs atomicfu at run time)
        runtime = (JARS / "kotlin-stdlib.jar", JARS / "kotlinx-coroutines-core.jar", JARS / "atomicfu.jar")
        kotlin = Kotlin(name, Path("/usr/bin/kotlinc"), runtime)
    else:
        lib = CURRENT_KOTLIN / "lib"
        kotlin = Kotlin(
            name,
            CURRENT_KOTLIN / "bin/kotlinc-jvm",
            (lib / "kotlin-stdlib.jar", lib / "kotlinx-coroutines-core-jvm.jar"),
        )
    missing = [str(p) for p in (kotlin.kotlinc, *kotlin.runtime) if not p.exists()]
    require(not missing, f"Kotlin toolchain {name} (see .ci/run); missing: {missing}")
    return kotlin


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, **kw)
    if done.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return done


def _compile(android: Path, work: Path, kotlin: Kotlin) -> str:
    """Classpath of one generated Android SDK: Debian protoc + grpc-java plugin -> Java, javac, then kotlinc."""
    missing = [t for t in TOOLS if shutil.which(t) is None] + [
        j for j in CLASSPATH_JARS if not (JARS / f"{j}.jar").exists()
    ]
    require(not missing, f"JVM toolchain for the Kotlin SDK check (Debian packages in .ci/run); missing: {missing}")
    jars = [str(JARS / f"{j}.jar") for j in CLASSPATH_JARS] + [str(p) for p in kotlin.runtime]
    gen, classes, kt = work / "gen", work / "classes", work / "kt"
    for d in (gen, classes, kt):
        d.mkdir()
    _run(
        [
            "protoc",
            f"--plugin=protoc-gen-grpc-java={shutil.which('grpc_java_plugin')}",
            f"--java_out={gen}",
            f"--grpc-java_out={gen}",
            f"-I{android / 'src/main/proto'}",
            "inference/grpc_service.proto",
        ]
    )
    java_sources = sorted(str(p) for p in [*gen.rglob("*.java"), *(HERE / "jvm" / "stubs").rglob("*.java")])
    _run(["javac", "--release", "8", "-nowarn", "-d", str(classes), "-cp", ":".join(jars), *java_sources])
    kotlin_sources = sorted(str(p) for p in (android / "src/main/java").rglob("*.kt"))
    assert len(kotlin_sources) >= 9, kotlin_sources
    _run(
        [
            str(kotlin.kotlinc),
            "-jvm-target",
            "1.8",
            "-nowarn",
            "-d",
            str(kt),
            "-cp",
            ":".join([str(classes), *jars]),
            *kotlin_sources,
            str(HERE / "jvm" / "Harness.kt"),
        ]
    )
    return ":".join([str(kt), str(classes), *jars])


@pytest.fixture(scope="session", params=["debian", "current"], ids=["kotlin-1.3-debian", "kotlin-current"])
def kotlin_sdk(request, sdk_build, tmp_path_factory):
    """Classpath of the edge-mode build's SDK, compiled by Debian's Kotlin 1.3 and by a current Kotlin."""
    return _compile(sdk_build.sdk_dirs["android"], tmp_path_factory.mktemp("kotlin"), _toolchain(request.param))


@pytest.fixture(scope="session")
def kotlin_split_sdk(split_sdk_build, tmp_path_factory):
    """Classpath of the compiled SDK of the split-mode build (its rendering differs: head asset, split docs)."""
    return _compile(split_sdk_build.sdk_dirs["android"], tmp_path_factory.mktemp("kotlin-split"), _toolchain("debian"))


@pytest.fixture(scope="session")
def jni_dir(tmp_path_factory) -> Path:
    """Debian's tcnative library under the file name netty loads it by (it checks the name, so a copy, not a link)."""
    require(TCNATIVE.exists(), f"{TCNATIVE} (Debian libnetty-tcnative-jni) for TLS on the JVM")
    folder = tmp_path_factory.mktemp("jni")
    shutil.copyfile(TCNATIVE, folder / "libnetty_tcnative.so")
    return folder


JNI: list[Path] = []


@pytest.fixture(autouse=True)
def _jni(jni_dir):
    JNI[:] = [jni_dir]


def _harness(classpath: str, *args: str) -> list[dict]:
    done = _run(["java", f"-Djava.library.path={JNI[0]}", "-cp", classpath, "edgeforge.harness.HarnessKt", *args])
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_the_compilers_are_the_ones_claimed():
    """The two compilers really are Kotlin 1.3 and a Kotlin of 2.x or later (not one compiler twice)."""
    versions = {}
    for name in ("debian", "current"):
        done = _run([str(_toolchain(name).kotlinc), "-version"])
        versions[name] = (done.stdout + done.stderr).split("kotlinc-jvm ")[1].split()[0]
    assert versions["debian"].startswith("1.3"), versions  # Debian's build calls itself 1.3-SNAPSHOT
    assert int(versions["current"].split(".")[0]) >= 2, versions


def test_quantizer_vectors_on_the_jvm(kotlin_sdk, tmp_path):
    path = tmp_path / "quantize.json"
    path.write_text(json.dumps(quantize_cases()))
    got = {r["name"]: r["levels"] for r in _harness(kotlin_sdk, "quantize", str(path))}
    assert got == {c["name"]: c["expect"] for c in quantize_cases()}


def test_fallback_vectors_on_the_jvm(kotlin_sdk, sdk_build, tmp_path):
    all_cases = cases(sdk_build.manifest)
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(all_cases))
    results = {r["name"]: r for r in _harness(kotlin_sdk, "vectors", str(path))}
    assert sorted(results) == sorted(c["name"] for c in all_cases)
    wrong = {c["name"]: mismatches(results[c["name"]], c["expect"]) for c in all_cases}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_kotlin_manifest_validation(kotlin_sdk, sdk_build, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(sdk_build.manifest))
    assert _harness(kotlin_sdk, "manifest", str(good)) == [{"ok": True, "below_gate": False}]
    for below_gate, expected in (
        (True, [{"ok": True, "below_gate": True}]),
        (None, [{"ok": True, "below_gate": False}]),
    ):
        marked = json.loads(good.read_text())
        marked["model"].pop("below_gate")  # optional: an SDK from before the field reads as not below the gate
        if below_gate is not None:
            marked["model"]["below_gate"] = below_gate
        good.write_text(json.dumps(marked))
        assert _harness(kotlin_sdk, "manifest", str(good)) == expected
    good.write_text(json.dumps(sdk_build.manifest))
    broken = json.loads(good.read_text())
    broken["model"]["below_gate"] = "yes"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken))
    assert _harness(kotlin_sdk, "manifest", str(bad)) == [
        {"error": "model/below_gate is not a boolean", "field": "model/below_gate"}
    ]
    broken = json.loads(good.read_text())
    del broken["cloud"]["model_name"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken))
    assert _harness(kotlin_sdk, "manifest", str(bad)) == [
        {"error": "cloud/model_name is required", "field": "cloud/model_name"}
    ]
    broken = json.loads(good.read_text())
    broken["labels"] = broken["labels"][:3]
    bad.write_text(json.dumps(broken))
    assert _harness(kotlin_sdk, "manifest", str(bad)) == [
        {"error": "labels: 3 labels for 10 classes", "field": "labels"}
    ]
    broken = json.loads(good.read_text())
    broken["policy"]["retries"] = -1
    bad.write_text(json.dumps(broken))
    assert _harness(kotlin_sdk, "manifest", str(bad)) == [
        {"error": "policy/retries -1 is outside 0.0..10.0", "field": "policy/retries"}
    ]


def test_kotlin_cloud_path_against_the_real_server(kotlin_sdk, sdk_build, oip_server, digits_samples, tmp_path):
    """LiteRT cannot load on the JVM (stub), so the real policy falls back to the real server over loopback."""
    import onnxruntime as ort

    x = digits_samples[0][:1]
    session = ort.InferenceSession(str(sdk_build.out_dir / "cloud" / "model.onnx"))
    expected = session.run(None, {session.get_inputs()[0].name: x})[0][0]
    sample = tmp_path / "x.txt"
    sample.write_text(",".join(repr(float(v)) for v in x.reshape(-1)))
    android = sdk_build.sdk_dirs["android"] / "src/main/assets"
    [result] = _harness(
        kotlin_sdk,
        "cloud",
        oip_server,
        str(android / "model-manifest.json"),
        str(android / "model.tflite"),
        str(sample),
    )
    assert (result["token_source"], result["token_fallback_reason"], result["edge_problem"]) == (
        "cloud",
        "model_load_failed",
        "model_load_failed",
    )
    assert result["token_label"] == str(expected.argmax())
    np.testing.assert_allclose(result["token_outputs"], expected, rtol=1e-5, atol=1e-5)


def test_kotlin_tls_and_token_against_the_real_server(
    kotlin_sdk, sdk_build, tls_server, tls_files, digits_samples, tmp_path
):
    """TLS with the SDK's custom-CA option and a bearer token, over grpc-netty on the JVM (grpc-okhttp on Android);
    a wrong token is refused by the server and the token never shows in the client's description."""
    from conftest import INFERENCE_TOKEN

    x = digits_samples[0][:1]
    sample = tmp_path / "x.txt"
    sample.write_text(",".join(repr(float(v)) for v in x.reshape(-1)))
    android = sdk_build.sdk_dirs["android"] / "src/main/assets"
    args = (str(android / "model-manifest.json"), str(android / "model.tflite"), str(sample), str(tls_files["ca"]))
    [result] = _harness(kotlin_sdk, "tls", tls_server, *args, INFERENCE_TOKEN)
    assert result["token_source"] == "cloud", result
    assert "no result" in result["wrong_token_error"] and "the cloud error" in result["wrong_token_error"]
    assert INFERENCE_TOKEN not in json.dumps(result)


def test_kotlin_cancellation_stops_the_call(kotlin_sdk, sdk_build, tmp_path):
    """A coroutine cancelled while the real gRPC call waits on a silent server: the caller sees the cancellation,
    the call itself is cancelled (not failed, not retried although the manifest allows 3 retries)."""
    manifest = json.loads(json.dumps(sdk_build.manifest))
    manifest["policy"].update(mode="cloud", retries=3)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    [result] = _harness(kotlin_sdk, "cancel", str(path))
    assert result == {"caller": "cancelled", "attempts": 1, "client_saw": "CancellationException", "client_ended": True}


def test_kotlin_split_path_sends_int8_to_the_real_server(
    kotlin_split_sdk, split_sdk_build, tail_server, digits_samples, tmp_path
):
    """Split mode on the JVM over loopback: the head's outputs (from LiteRT here; a stub on the JVM, so replayed
    there) are quantized by the Kotlin policy and sent by OipCloudClient as INT8 to the served tail; the int8 values
    equal the compressor's quantizer's and the answers equal onnxruntime on split/tail.onnx fed those values."""
    from compressor.runtimes import OnnxRunner, open_artifact, quantize

    manifest = split_sdk_build.manifest
    split = manifest["split"]
    assert manifest["policy"]["mode"] == "split" and split["tail"]["inputs"][0]["datatype"] == "INT8"
    q = split["intermediate"]["quantization"]
    x = digits_samples[0][:8]
    head = open_artifact(split_sdk_build.out_dir / split["head"]["file"], split["head"]["format"])
    middle = np.concatenate([head.run({"x": x[i : i + 1]})[0] for i in range(len(x))]).astype(np.float32)
    sent = quantize(middle, q["scale"], q["zero_point"], np.int8)
    tail = OnnxRunner(split_sdk_build.out_dir / split["tail"]["file"])
    expected = np.concatenate([tail.run({split["intermediate"]["name"]: sent[i : i + 1]})[0] for i in range(len(x))])
    middle_file = tmp_path / "middle.txt"
    middle_file.write_text("\n".join(",".join(repr(float(v)) for v in m.reshape(-1)) for m in middle))
    assets = split_sdk_build.sdk_dirs["android"] / "src/main/assets"
    results = _harness(
        kotlin_split_sdk,
        "split",
        tail_server,
        str(assets / "model-manifest.json"),
        str(assets / manifest["model"]["file"]),
        str(assets / split["head"]["file"]),
        str(middle_file),
    )
    assert [(r["source"], r["head_problem"]) for r in results] == [("split", None)] * len(x), results
    np.testing.assert_array_equal(np.array([r["sent"][0] for r in results]), sent.reshape(len(x), -1))
    got = np.array([r["outputs"] for r in results])
    np.testing.assert_allclose(got, expected.reshape(len(x), -1), rtol=1e-5, atol=1e-5)
    labels = [manifest["labels"][i] for i in expected.reshape(len(x), -1).argmax(1)]
    assert [r["label"] for r in results] == labels
