"""Session fixtures for the SDK tests: real `sdkgen build`s of the digits CNN (edge and split mode), real OIP
servers."""

from __future__ import annotations

import importlib
import sys

import pytest

SDK_NAME = "DigitsClassifier"


def pytest_collection_modifyitems(items):
    """Every SDK test builds or compiles real SDKs: none is part of ``make test-fast``."""
    for item in items:
        if "/tests/sdk/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)


SDK_PACKAGE = "com.example.digits"


@pytest.fixture(scope="session")
def sdk_build(digits_files, tmp_path_factory):
    """All three SDKs for the digits CNN (int8-full LiteRT model for pixel-8), built once per session."""
    from compressor.options import CompressOptions
    from compressor.profiles import Precision
    from sdkgen.build import build
    from sdkgen.spec import SdkSpec, read_labels

    spec = SdkSpec(
        name=SDK_NAME,
        package=SDK_PACKAGE,
        platforms=("android", "ios", "python"),
        labels=read_labels(digits_files / "labels.txt"),
    )
    out = tmp_path_factory.mktemp("sdk") / "digits"
    return build(
        digits_files / "model.pt2",
        "pixel-8",
        out,
        spec,
        data=digits_files / "data.npz",
        options=CompressOptions(precisions=(Precision.INT8_FULL,)),
    )


@pytest.fixture(scope="session")
def python_sdk(sdk_build):
    """The generated Python package, imported from the build's source tree."""
    sys.path.insert(0, str(sdk_build.sdk_dirs["python"] / "src"))
    return importlib.import_module("digits_classifier")


@pytest.fixture(scope="session")
def oip_server(sdk_build):
    """The project's gRPC server serving the build's cloud/model.onnx under the manifest's cloud name and version."""
    yield from _serve(sdk_build.manifest["cloud"], sdk_build.out_dir)


@pytest.fixture(scope="session")
def split_sdk_build(digits_files, tmp_path_factory):
    """Split-mode Android and Python SDKs of the digits CNN (same names as ``sdk_build``, so the harness compiles)."""
    from compressor.options import CompressOptions
    from compressor.profiles import Precision
    from compressor.splitting.request import SplitRequest
    from sdkgen.build import build
    from sdkgen.spec import SdkSpec, read_labels

    spec = SdkSpec(
        name=SDK_NAME,
        package=SDK_PACKAGE,
        platforms=("android", "python"),
        labels=read_labels(digits_files / "labels.txt"),
        mode="split",
    )
    out = tmp_path_factory.mktemp("split-sdk") / "digits"
    return build(
        digits_files / "model.pt2",
        "pixel-8",
        out,
        spec,
        data=digits_files / "data.npz",
        options=CompressOptions(precisions=(Precision.FP32,)),
        split=SplitRequest(uplink_mbps=1.0, rtt_ms=20.0),
    )


@pytest.fixture(scope="session")
def tail_server(split_sdk_build):
    """The project's gRPC server serving only the split build's tail, under the manifest's tail name and version."""
    yield from _serve(split_sdk_build.manifest["split"]["tail"], split_sdk_build.out_dir)


def _serve(model: dict, out_dir, config=None, tenant: str = "default", host: str = "127.0.0.1"):
    """Serve ``model`` (a manifest's cloud or tail section: model_name, model_version, file) until the session ends."""
    from server.app import create_server
    from server.inference.repository import ModelRepository

    repository = ModelRepository()
    repository.register(model["model_name"], model["model_version"], out_dir / model["file"], tenant=tenant)
    server, port = create_server(f"{host}:0", config=config, repository=repository)
    server.start()
    yield f"{host}:{port}"
    server.stop(0)


INFERENCE_TOKEN = "sdk-test-token-5f1c"  # the secret the TLS tests check is never echoed


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A throwaway CA and a server certificate for localhost/127.0.0.1 signed by it (openssl), as paths."""
    import shutil
    import subprocess

    from support import require

    require(shutil.which("openssl") is not None, "openssl (Debian package openssl) makes the TLS test certificates")
    d = tmp_path_factory.mktemp("tls")

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=120)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=EdgeForge test CA",
    )
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"
    )
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    )
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


@pytest.fixture(scope="session")
def tls_server(sdk_build, tls_files):
    """The project's server with TLS and bearer-token auth, serving the build's cloud model to tenant 'acme'."""
    from server.config import ServerConfig, Tenant

    config = ServerConfig(
        tls_cert=tls_files["cert"],
        tls_key=tls_files["key"],
        tenants=(Tenant(name="acme", inference_tokens=(INFERENCE_TOKEN,)),),
    )
    yield from _serve(sdk_build.manifest["cloud"], sdk_build.out_dir, config, tenant="acme", host="localhost")


@pytest.fixture(scope="session")
def digits_samples(digits_files):
    import numpy as np

    with np.load(digits_files / "data.npz") as data:
        return data["x"][:24], data["labels"][:24]


@pytest.fixture(scope="module")
def sdk_modules(python_sdk):
    """The generated package's policy, manifest and tensors modules."""
    import importlib
    from types import SimpleNamespace

    names = ("policy", "manifest", "tensors")
    return SimpleNamespace(**{n: importlib.import_module(f"digits_classifier.{n}") for n in names})
