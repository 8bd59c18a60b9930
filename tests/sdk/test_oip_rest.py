"""OIP v2 over HTTP/REST beside gRPC: stock Triton clients on both, the same outputs as onnxruntime, bad requests,
tenant auth, and `sdkgen serve --http-port`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from support import require, wait_for

from server.app import create_server, shutdown
from server.config import ServerConfig, Tenant
from server.inference.repository import ModelRepository

CLIENTS = Path(__file__).resolve().parents[1] / "oip_clients.py"
ROOT = Path(__file__).resolve().parents[2]


def served_models(sdk_build, split_sdk_build) -> dict[str, tuple[dict, Path]]:
    """The digits cloud model and the split build's tail: manifest section and ONNX file, by kind."""
    cloud, tail = sdk_build.manifest["cloud"], split_sdk_build.manifest["split"]["tail"]
    return {
        "cloud": (cloud, sdk_build.out_dir / cloud["file"]),
        "tail": (tail, split_sdk_build.out_dir / tail["file"]),
    }


def sample_inputs(kind: str, digits_samples) -> dict[str, np.ndarray]:
    if kind == "cloud":
        return {"x": digits_samples[0][:5]}
    return {"intermediate": np.random.default_rng(1).integers(-128, 128, (5, 16, 2, 2), dtype=np.int8)}


def onnxruntime_outputs(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def call_with_tritonclient(protocol, url, model, version, feeds, tmp_path, *, json_tensors=False, token=None):
    """Run a stock tritonclient in a child process; return its report and the outputs it received."""
    require(
        subprocess.run([sys.executable, "-c", f"import tritonclient.{protocol}"], capture_output=True).returncode == 0,
        f"tritonclient[{protocol}] is not installed (make setup installs it)",
    )
    np.savez(tmp_path / "in.npz", **feeds)
    command = [sys.executable, str(CLIENTS), protocol, url, model, version, str(tmp_path / "in.npz")]
    command += [
        str(tmp_path / "out.npz"),
        *(["--json"] if json_tensors else []),
        *(["--token", token] if token else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), dict(np.load(tmp_path / "out.npz"))


@pytest.fixture(scope="module")
def both(sdk_build, split_sdk_build):
    """Our server with gRPC and REST on loopback, serving the digits cloud model and the split tail."""
    repository = ModelRepository()
    for section, path in served_models(sdk_build, split_sdk_build).values():
        repository.register(section["model_name"], section["model_version"], path)
    server, port = create_server("127.0.0.1:0", ServerConfig(http_port=0), repository=repository)
    server.start()
    yield {"grpc": f"127.0.0.1:{port}", "http": f"127.0.0.1:{server.rest.port}"}
    shutdown(server, 1)


CALLS = {
    "http binary cloud": ("http", "cloud", False),
    "http json cloud": ("http", "cloud", True),
    "grpc cloud": ("grpc", "cloud", False),
    "http binary tail": ("http", "tail", False),
    "http json tail": ("http", "tail", True),
    "grpc tail": ("grpc", "tail", False),
}


@pytest.mark.parametrize("call", CALLS)
def test_stock_clients_get_onnxruntime_outputs(both, sdk_build, split_sdk_build, digits_samples, tmp_path, call):
    protocol, kind, json_tensors = CALLS[call]
    section, path = served_models(sdk_build, split_sdk_build)[kind]
    feeds = sample_inputs(kind, digits_samples)
    report, got = call_with_tritonclient(
        protocol,
        both[protocol],
        section["model_name"],
        section["model_version"],
        feeds,
        tmp_path,
        json_tensors=json_tensors,
    )
    assert (report["live"], report["ready"], report["other_ready"], report["id"]) == (True, True, False, "req-1")
    meta = report["metadata"]
    assert [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in meta["inputs"]] == [
        (t["name"], t["datatype"], [-1 if d is None else d for d in t["shape"]]) for t in section["inputs"]
    ]
    expected = onnxruntime_outputs(path, feeds)
    assert set(got) == set(expected) == {o["name"] for o in section["outputs"]}
    for name, array in expected.items():
        assert got[name].dtype == array.dtype
        np.testing.assert_allclose(got[name], array, rtol=1e-6, atol=1e-6)


def _http(url: str, path: str, body: bytes | None = None, headers: dict | None = None, method: str | None = None):
    """(status, parsed JSON body) of one real HTTP request."""
    request = urllib.request.Request(f"http://{url}{path}", data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _infer_body(inputs: list[dict], **extra) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


X = {"name": "x", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.5] * 64}
BIN = json.dumps(
    {"inputs": [{**{k: X[k] for k in ("name", "shape", "datatype")}, "parameters": {"binary_data_size": 256}}]}
)
BAD = {
    "unknown model": (
        "/v2/models/nope/infer",
        _infer_body([X]),
        {},
        404,
        r"no model named 'nope'.*served models: digits",
    ),
    "unknown version": (
        "/v2/models/digits_classifier/versions/9",
        None,
        {},
        404,
        r"no version '9'; served versions: 1",
    ),
    "unknown model ready": ("/v2/models/nope/ready", None, {}, 404, r"no model named 'nope'"),
    "wrong shape": (
        "/v2/models/digits_classifier/infer",
        _infer_body([{**X, "shape": [1, 1, 8, 9]}]),
        {},
        400,
        r"shape \[1, 1, 8, 9\]; the model expects x FP32\[-1, 1, 8, 8\]",
    ),
    "wrong datatype": (
        "/v2/models/digits_classifier/infer",
        _infer_body([{**X, "datatype": "FP64"}]),
        {},
        400,
        r"datatype FP64; the model expects x FP32",
    ),
    "too few values": (
        "/v2/models/digits_classifier/infer",
        _infer_body([{**X, "data": [0.5] * 63}]),
        {},
        400,
        r"carries 63 values in 'data'; shape \[1, 1, 8, 8\] needs 64",
    ),
    "not numbers": (
        "/v2/models/digits_classifier/infer",
        _infer_body([{**X, "data": ["a"] * 64}]),
        {},
        400,
        r"'data' is not a list of FP32 values",
    ),
    "invalid json": ("/v2/models/digits_classifier/infer", b"{nope", {}, 400, r"the request's JSON is invalid"),
    "no inputs": ("/v2/models/digits_classifier/infer", b"{}", {}, 400, r"needs 'inputs'"),
    "missing input": ("/v2/models/digits_classifier/infer", _infer_body([]), {}, 400, r"needs input\(s\) x FP32"),
    "unknown input": (
        "/v2/models/digits_classifier/infer",
        _infer_body([{**X, "name": "y"}]),
        {},
        400,
        r"no input 'y'; its inputs: x FP32",
    ),
    "unknown output": (
        "/v2/models/digits_classifier/infer",
        _infer_body([X], outputs=[{"name": "probs"}]),
        {},
        400,
        r"no output\(s\) \['probs'\]",
    ),
    "short binary data": (
        "/v2/models/digits_classifier/infer",
        BIN.encode() + b"\0" * 252,
        {"Inference-Header-Content-Length": str(len(BIN))},
        400,
        r"binary_data_size 256 \(252 bytes left in the body\); shape \[1, 1, 8, 8\] of FP32 needs 256",
    ),
    "extra binary data": (
        "/v2/models/digits_classifier/infer",
        BIN.encode() + b"\0" * 260,
        {"Inference-Header-Content-Length": str(len(BIN))},
        400,
        r"carries 260 bytes of binary tensor data but the inputs' binary_data_size add up to 256",
    ),
    "header length past the body": (
        "/v2/models/digits_classifier/infer",
        _infer_body([X]),
        {"Inference-Header-Content-Length": "99999"},
        400,
        r"Inference-Header-Content-Length is '99999' but the body has \d+ bytes",
    ),
    "shared memory": (
        "/v2/models/digits_classifier/infer",
        _infer_body([{**X, "parameters": {"shared_memory_region": "r"}}]),
        {},
        400,
        r"uses shared_memory_region; this server does not offer shared memory",
    ),
    "compressed body": (
        "/v2/models/digits_classifier/infer",
        _infer_body([X]),
        {"Content-Encoding": "gzip"},
        400,
        r"Content-Encoding 'gzip' is not supported",
    ),
    "too large": ("/v2/models/digits_classifier/infer", b" " * (1024 * 1024 + 1), {}, 413, r"at most 1048576"),
    "unknown route": (
        "/v2/models/digits_classifier/explain",
        b"{}",
        {},
        404,
        r"POST /v2/models/digits_classifier/explain",
    ),
    "wrong method": ("/v2/models/digits_classifier/infer", None, {}, 405, r"GET .*Method Not Allowed"),
}


@pytest.fixture(scope="module")
def small_limit(sdk_build):
    """A REST-only check server with the smallest message limit (1 MiB), serving the digits cloud model."""
    cloud = sdk_build.manifest["cloud"]
    repository = ModelRepository()
    repository.register(cloud["model_name"], cloud["model_version"], sdk_build.out_dir / cloud["file"])
    server, _ = create_server("127.0.0.1:0", ServerConfig(http_port=0, max_message_bytes=1024 * 1024), repository)
    yield f"127.0.0.1:{server.rest.port}"
    shutdown(server, 1)


@pytest.mark.parametrize("case", BAD)
def test_bad_requests_get_status_and_error_json_and_the_server_keeps_serving(small_limit, case):
    path, body, headers, status, message = BAD[case]
    got_status, got = _http(small_limit, path, body, {"Content-Type": "application/json", **headers})
    assert got_status == status and re.search(message, got["error"]), got
    ok_status, ok = _http(small_limit, "/v2/models/digits_classifier/infer", _infer_body([X]))
    assert ok_status == 200 and ok["outputs"][0]["shape"] == [1, 10] and len(ok["outputs"][0]["data"]) == 10


def test_inference_tokens_and_tenants_apply_to_rest(sdk_build):
    cloud = sdk_build.manifest["cloud"]
    repository = ModelRepository()
    repository.register(cloud["model_name"], "1", sdk_build.out_dir / cloud["file"], tenant="acme")
    tenants = (
        Tenant(name="acme", build_tokens=("acme-build",), inference_tokens=("acme-infer",)),
        Tenant(name="other", inference_tokens=("other-infer",)),
    )
    server, _ = create_server("127.0.0.1:0", ServerConfig(http_port=0, tenants=tenants), repository)
    url, path = f"127.0.0.1:{server.rest.port}", "/v2/models/digits_classifier/infer"
    try:
        assert _http(url, "/v2/health/ready") == (200, {"ready": True})  # probes need no token
        status, body = _http(url, path, _infer_body([X]))
        assert status == 401 and "needs a bearer token" in body["error"]
        status, body = _http(url, path, _infer_body([X]), {"Authorization": "Bearer nope"})
        assert status == 401 and "not known" in body["error"]
        status, body = _http(url, path, _infer_body([X]), {"Authorization": "Bearer acme-build"})
        assert status == 403 and "this token is a build token" in body["error"]
        status, body = _http(url, path, _infer_body([X]), {"Authorization": "Bearer other-infer"})
        assert status == 404 and "no model named 'digits_classifier'" in body["error"]  # another tenant's model
        status, body = _http(url, path, _infer_body([X]), {"Authorization": "Bearer acme-infer"})
        assert status == 200 and body["model_name"] == "digits_classifier"
    finally:
        shutdown(server, 1)


def test_stock_http_client_sends_the_token(sdk_build, digits_samples, tmp_path):
    cloud = sdk_build.manifest["cloud"]
    repository = ModelRepository()
    repository.register(cloud["model_name"], "1", sdk_build.out_dir / cloud["file"], tenant="acme")
    config = ServerConfig(http_port=0, tenants=(Tenant(name="acme", inference_tokens=("acme-infer",)),))
    server, _ = create_server("127.0.0.1:0", config, repository)
    try:
        feeds = {"x": digits_samples[0][:2]}
        _, got = call_with_tritonclient(
            "http", f"127.0.0.1:{server.rest.port}", "digits_classifier", "", feeds, tmp_path, token="acme-infer"
        )
        expected = onnxruntime_outputs(sdk_build.out_dir / cloud["file"], feeds)
        np.testing.assert_allclose(got["linear_1"], expected["linear_1"], rtol=1e-6, atol=1e-6)
    finally:
        shutdown(server, 1)


def test_sdkgen_serve_http_port(tmp_path):
    """`sdkgen serve --http-port 0` answers OIP REST next to gRPC and stops cleanly on SIGTERM."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "sdkgen.cli", "serve", "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
    process = subprocess.Popen(
        [*command, "--data-dir", str(tmp_path / "data")], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        line = wait_for(lambda: next((s for s in iter(process.stdout.readline, "") if "HTTP on port" in s), None), 180)
        port = int(line.rsplit(" ", 1)[1])
        assert _http(f"127.0.0.1:{port}", "/v2/health/live") == (200, {"live": True})
        status, body = _http(f"127.0.0.1:{port}", "/v2/models/none/ready")
        assert status == 404 and "models appear when a job completes" in body["error"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0


def test_concurrent_rest_requests_share_the_grpc_batcher_and_get_their_own_rows(sdk_build, digits_samples):
    """REST calls go through the same Batcher as ModelInfer (--max-batch): stacked runs, each caller its rows."""
    from concurrent.futures import ThreadPoolExecutor

    cloud = sdk_build.manifest["cloud"]
    repository = ModelRepository()
    model = repository.register(cloud["model_name"], "1", sdk_build.out_dir / cloud["file"])
    runs, run = [], model.run
    model.run = lambda feeds, outputs: runs.append(len(feeds["x"])) or run(feeds, outputs)
    # a long window, so that requests sent together meet in one batch however loaded the machine is
    config = ServerConfig(http_port=0, max_batch=16, batch_window_ms=1000)
    server, _ = create_server("127.0.0.1:0", config, repository)
    x = digits_samples[0][:24]
    slices = [(i, i + n) for i, n in zip(range(0, 24, 2), [1, 2, 3, 2] * 3)]

    def infer(bounds):
        a, b = bounds
        tensor = {"name": "x", "shape": [b - a, 1, 8, 8], "datatype": "FP32", "data": x[a:b].ravel().tolist()}
        return _http(f"127.0.0.1:{server.rest.port}", "/v2/models/digits_classifier/infer", _infer_body([tensor]))

    try:
        with ThreadPoolExecutor(len(slices)) as pool:
            replies = list(pool.map(infer, slices))
    finally:
        shutdown(server, 1)
    expected = onnxruntime_outputs(sdk_build.out_dir / cloud["file"], {"x": x})["linear_1"]
    for (a, b), (status, reply) in zip(slices, replies):
        assert status == 200
        got = np.asarray(reply["outputs"][0]["data"], np.float32).reshape(reply["outputs"][0]["shape"])
        np.testing.assert_allclose(got, expected[a:b], rtol=1e-5, atol=1e-5)
    assert sum(runs) == sum(b - a for a, b in slices) and len(runs) < len(slices) and max(runs) <= 16, runs


def test_rest_serves_tls_with_the_grpc_certificate(sdk_build, tmp_path):
    import shutil
    import ssl

    require(shutil.which("openssl") is not None, "the openssl command makes the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run(
        [*request, "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server, _ = create_server("127.0.0.1:0", ServerConfig(http_port=0, tls_cert=cert, tls_key=key), ModelRepository())
    url = f"127.0.0.1:{server.rest.port}/v2/health/ready"
    try:
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"https://{url}", context=context, timeout=60) as response:
            assert (response.status, json.loads(response.read())) == (200, {"ready": True})
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(f"http://{url}", timeout=60)  # plain text gets no answer
    finally:
        shutdown(server, 1)


def test_rest_socket_is_tcp_so_asyncio_turns_nagle_off():
    """asyncio sets TCP_NODELAY only on sockets made with IPPROTO_TCP; without it every answer waited ~40 ms for the
    client's delayed ACK (measured: 44 ms vs 0.3 ms p50 for /v2/health/live on loopback)."""
    import socket

    server, _ = create_server("127.0.0.1:0", ServerConfig(http_port=0), ModelRepository())
    try:
        assert server.rest._socket.proto == socket.IPPROTO_TCP
        assert _http(f"127.0.0.1:{server.rest.port}", "/v2/health/live") == (200, {"live": True})
    finally:
        shutdown(server, 1)


def test_rest_infer_is_held_to_the_same_row_and_element_limits_as_grpc(sdk_build):
    """Rows and elements are checked from the declared shapes before anything is decoded (413, as over gRPC it is
    RESOURCE_EXHAUSTED); a request within the limits still answers."""
    cloud = sdk_build.manifest["cloud"]
    repository = ModelRepository()
    repository.register(cloud["model_name"], cloud["model_version"], sdk_build.out_dir / cloud["file"])
    config = ServerConfig(http_port=0, max_request_rows=4, max_request_elements=64 * 8)
    server, _ = create_server("127.0.0.1:0", config, repository)
    url, path = f"127.0.0.1:{server.rest.port}", "/v2/models/digits_classifier/infer"
    try:
        rows = {**X, "shape": [5, 1, 8, 8], "data": [0.5] * 64 * 5}
        status, body = _http(url, path, _infer_body([rows]), {"Content-Type": "application/json"})
        assert status == 413 and "at most 4 per request" in body["error"], body
        wrapped = {**X, "shape": [1, 1, 8, 2**62], "data": [0.5]}  # int64-wrapping dims: refused, not decoded
        status, body = _http(url, path, _infer_body([wrapped]), {"Content-Type": "application/json"})
        assert status in (400, 413), body
        status, body = _http(url, path, _infer_body([{**X, "shape": [4, 1, 8, 8], "data": [0.5] * 256}]))
        assert status == 200 and body["outputs"][0]["shape"] == [4, 10], body
    finally:
        shutdown(server, 1)
