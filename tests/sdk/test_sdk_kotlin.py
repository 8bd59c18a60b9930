"""The generated Kotlin SDK on the JVM: compiled with kotlinc against Debian's grpc-java/protobuf-java, vectors and cloud run."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sdk_support import cases, mismatches, require

HERE = Path(__file__).resolve().parent
JARS = Path("/usr/share/java")
CLASSPATH_JARS = (
    "grpc-api", "grpc-context", "grpc-core", "grpc-netty", "grpc-protobuf", "grpc-protobuf-lite", "grpc-stub",
    "protobuf", "guava", "perfmark-api", "netty-buffer", "netty-codec", "netty-codec-http", "netty-codec-http2",
    "netty-common", "netty-handler", "netty-resolver", "netty-transport", "netty-codec-socks", "netty-handler-proxy", "geronimo-annotation-1.3-spec", "error_prone_annotations",
    "kotlin-stdlib",
)
TOOLS = ("kotlinc", "javac", "java", "protoc", "grpc_java_plugin")


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)
    if done.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return done


@pytest.fixture(scope="session")
def kotlin_sdk(sdk_build, tmp_path_factory):
    """Classpath of the compiled SDK: Debian protoc + grpc-java plugin -> Java, javac, then kotlinc over every .kt."""
    missing = [t for t in TOOLS if shutil.which(t) is None] + [j for j in CLASSPATH_JARS if not (JARS / f"{j}.jar").exists()]
    require(not missing, f"JVM toolchain for the Kotlin SDK check (Debian packages in .ci/run); missing: {missing}")
    android = sdk_build.sdk_dirs["android"]
    work = tmp_path_factory.mktemp("kotlin")
    jars = [str(JARS / f"{j}.jar") for j in CLASSPATH_JARS]
    gen, classes, kt = work / "gen", work / "classes", work / "kt"
    for d in (gen, classes, kt):
        d.mkdir()
    _run(["protoc", f"--plugin=protoc-gen-grpc-java={shutil.which('grpc_java_plugin')}", f"--java_out={gen}",
          f"--grpc-java_out={gen}", f"-I{android / 'src/main/proto'}", "inference/grpc_service.proto"])
    java_sources = sorted(str(p) for p in [*gen.rglob("*.java"), *(HERE / "jvm" / "stubs").rglob("*.java")])
    _run(["javac", "--release", "8", "-nowarn", "-d", str(classes), "-cp", ":".join(jars), *java_sources])
    kotlin_sources = sorted(str(p) for p in (android / "src/main/java").rglob("*.kt"))
    assert len(kotlin_sources) >= 7, kotlin_sources
    _run(["kotlinc", "-jvm-target", "1.8", "-nowarn", "-d", str(kt), "-cp", ":".join([str(classes), *jars]),
          *kotlin_sources, str(HERE / "jvm" / "Harness.kt")])
    return ":".join([str(kt), str(classes), *jars])


def _harness(classpath: str, *args: str) -> list[dict]:
    done = _run(["java", "-cp", classpath, "edgeforge.harness.HarnessKt", *args])
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


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
    assert _harness(kotlin_sdk, "manifest", str(good)) == [{"ok": True}]
    broken = json.loads(good.read_text())
    del broken["cloud"]["model_name"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken))
    assert _harness(kotlin_sdk, "manifest", str(bad)) == [{"error": "cloud/model_name is required"}]
    broken = json.loads(good.read_text())
    broken["labels"] = broken["labels"][:3]
    bad.write_text(json.dumps(broken))
    assert _harness(kotlin_sdk, "manifest", str(bad)) == [{"error": "labels: 3 labels for 10 classes"}]


def test_kotlin_cloud_path_against_the_real_server(kotlin_sdk, sdk_build, oip_server, digits_samples, tmp_path):
    """LiteRT cannot load on the JVM (stub), so the real policy falls back to the real server over loopback."""
    import onnxruntime as ort

    x = digits_samples[0][:1]
    session = ort.InferenceSession(str(sdk_build.out_dir / "cloud" / "model.onnx"))
    expected = session.run(None, {session.get_inputs()[0].name: x})[0][0]
    sample = tmp_path / "x.txt"
    sample.write_text(",".join(repr(float(v)) for v in x.reshape(-1)))
    android = sdk_build.sdk_dirs["android"] / "src/main/assets"
    [result] = _harness(kotlin_sdk, "cloud", oip_server, str(android / "model-manifest.json"),
                        str(android / "model.tflite"), str(sample))
    assert (result["source"], result["fallback_reason"], result["edge_problem"]) == ("cloud", "model_load_failed", "model_load_failed")
    assert result["label"] == str(expected.argmax())
    np.testing.assert_allclose(result["outputs"], expected, rtol=1e-5, atol=1e-5)
