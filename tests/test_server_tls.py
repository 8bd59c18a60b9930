"""TLS via --tls-cert/--tls-key: a self-signed certificate made in the test; the client trusts it with --tls-ca,
and a plain-text client gets a clear failure instead of an answer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from support import require

from sdkgen.cli import EXIT_BAD_INPUT, main
from server.app import create_server, shutdown
from server.client import CompressionClient
from server.config import ServerConfig
from server.gen.edgeforge.v1 import compression_pb2 as pb

pytestmark = pytest.mark.slow  # builds or serves real models: not part of make test-fast


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key (PEM)."""
    require(shutil.which("openssl") is not None, "the openssl command makes the test certificate")
    root = tmp_path_factory.mktemp("tls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def address(certificate, tmp_path_factory):
    cert, key = certificate
    server, port = create_server(
        "127.0.0.1:0", ServerConfig(data_dir=tmp_path_factory.mktemp("server"), tls_cert=cert, tls_key=key)
    )
    server.start()
    yield f"127.0.0.1:{port}"
    shutdown(server, 0)


def test_client_with_the_ca_calls_the_tls_server(address, certificate):
    client = CompressionClient(address, tls_ca=certificate[0])
    try:
        assert "pixel-8" in [p.name for p in client.stub.ListProfiles(pb.ListProfilesRequest(), timeout=30).profiles]
    finally:
        client.close()


def test_plain_text_call_to_the_tls_port_fails(address):
    client = CompressionClient(address)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            client.stub.ListProfiles(pb.ListProfilesRequest(), timeout=30)
    finally:
        client.close()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def _submit(address, model: Path, *extra: str) -> int:
    return main(
        ["submit", str(model), "--server", address, "--profile", "toaster", "--out", str(model.parent / "out"), *extra]
    )


def test_sdkgen_submit_over_tls(address, certificate, tmp_path, capsys):
    """With --tls-ca the CLI's upload reaches the server (which refuses the unknown profile); without it, a hint."""
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not read: the spec is refused first")
    assert _submit(address, model, "--tls-ca", str(certificate[0])) == EXIT_BAD_INPUT
    printed = " ".join(capsys.readouterr().err.split())
    assert "answered INVALID_ARGUMENT: unknown hardware profile 'toaster'" in printed, printed
    assert _submit(address, model) == EXIT_BAD_INPUT
    printed = " ".join(capsys.readouterr().err.split())
    assert "answered UNAVAILABLE" in printed and "pass --tls-ca CA.pem if it serves TLS" in printed, printed
