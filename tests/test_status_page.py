"""The read-only HTTP status page of a running server with two tenants, fetched by headless Chromium."""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
import urllib.request

import browser
import pytest
from support import require

from compressor.options import CompressOptions
from compressor.profiles import Precision
from sdkgen.spec import SdkSpec, read_labels
from server.app import create_server, shutdown
from server.client import CompressionClient
from server.config import ServerConfig, Tenant
from server.gen.edgeforge.v1 import compression_pb2 as pb
from server.jobs.spec import to_proto

pytestmark = pytest.mark.slow  # builds or serves real models: not part of make test-fast

TENANTS = (
    Tenant(name="alice", build_tokens=("alice-build",), inference_tokens=("alice-infer",)),
    Tenant(name="bob", build_tokens=("bob-build",), inference_tokens=("bob-infer",)),
)
OPTIONS = CompressOptions(latency_repeats=5, latency_warmup=1, precisions=(Precision.INT8_DYNAMIC,))
BUILD_TIMEOUT_MS = 600_000  # a job on two shared cores; the page refreshes itself until it shows the end


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    config = ServerConfig(
        data_dir=tmp_path_factory.mktemp("status"), tenants=TENANTS, max_concurrent_jobs=2, status_address="127.0.0.1:0"
    )
    running, port = create_server("127.0.0.1:0", config)
    running.start()
    yield running, port
    shutdown(running, 0)


@pytest.fixture(scope="module")
def base(server):
    return f"http://127.0.0.1:{server[0].status_page.port}"


@pytest.fixture(scope="module")
def jobs(server, digits_files):
    """One digits job each for alice and bob, submitted over gRPC (not waited for)."""
    spec = to_proto(
        "pixel-8",
        SdkSpec(name="Digits", platforms=("python",), labels=read_labels(digits_files / "labels.txt")),
        OPTIONS,
    )
    submitted = {}
    for tenant in ("alice", "bob"):
        client = CompressionClient(f"127.0.0.1:{server[1]}", f"{tenant}-build")
        submitted[tenant] = client.submit(spec, digits_files / "model.pt2", digits_files / "data.npz")
        client.close()
    return submitted


@pytest.fixture(scope="module")
def chromium():
    require(browser.available(), "Debian's chromium and the playwright package (the browser checks)")
    with browser.chromium() as running:
        yield running


def _only_from(log: browser.PageLog, base: str, **refusals: int) -> None:
    """No console errors but the refusals the test asked for (``not_found=3``...) and no request elsewhere."""
    codes = {"not_found": 404, "unauthorized": 401}
    expected = sorted(f"status of {codes[k]}" for k, n in refusals.items() for _ in range(n))
    seen = sorted(e.split("responded with a ")[-1].split(" (")[0] for e in log.console_errors)
    assert seen == expected, log.console_errors
    assert all(url.startswith(base + "/") for url in log.requests), log.requests


def test_a_tenant_sees_its_jobs_live_until_they_finish_and_never_another_tenants(chromium, base, jobs):
    alice, bob = jobs["alice"].id, jobs["bob"].id
    with browser.open_page(chromium, base + "/", bearer("alice-build"), javascript=False) as (page, log):
        assert page.locator(f"#job-{alice}").count() == 1 and page.locator(f"#job-{bob}").count() == 0
        assert page.locator('meta[http-equiv="refresh"]').count() == 1  # unfinished: the page reloads itself
        # No script: the page's own refresh brings the end state, as a browser with JavaScript off would see it.
        page.wait_for_selector(f"#job-{alice} .state.succeeded", timeout=BUILD_TIMEOUT_MS)
        assert page.locator(f"#job-{alice} a[href='/jobs/{alice}/report']").count() == 1
        assert page.locator(f"#job-{bob}").count() == 0
    _only_from(log, base)
    with browser.open_page(chromium, base + "/", bearer("bob-build"), javascript=False) as (page, log):
        assert page.locator(f"#job-{bob}").count() == 1 and page.locator(f"#job-{alice}").count() == 0
        response = page.goto(f"{base}/jobs/{alice}")
        assert response.status == 404 and "has no job" in page.content()
        assert page.goto(f"{base}/jobs/{alice}/report").status == 404
        assert page.goto(f"{base}/jobs/{alice}/artifacts/model.tflite").status == 404
    _only_from(log, base, not_found=3)


def test_job_page_opens_the_report_and_downloads_verified_artifacts(chromium, base, jobs, server, tmp_path):
    alice = jobs["alice"].id
    client = CompressionClient(f"127.0.0.1:{server[1]}", "alice-build")
    final = client.watch(alice)
    client.close()
    assert final.state == pb.SUCCEEDED, final.error
    recorded = {a.name: a.sha256 for a in final.artifacts}
    assert {"report.html", "report.json", "model.tflite"} <= set(recorded)
    with browser.open_page(chromium, f"{base}/jobs/{alice}", bearer("alice-build"), javascript=False) as (page, log):
        assert page.locator(".state.succeeded").count() == 1 and page.locator('meta[http-equiv="refresh"]').count() == 0
        links = page.locator("table.artifacts a").evaluate_all("(links) => links.map(a => a.textContent)")
        assert sorted(links) == sorted(recorded)
        download = page.context.request.get(f"{base}/jobs/{alice}/artifacts/model.tflite")
        assert hashlib.sha256(download.body()).hexdigest() == recorded["model.tflite"]
        page.click("text=Open the build report")
        page.wait_for_load_state("networkidle")
        assert page.url == f"{base}/jobs/{alice}/report"
        charts = page.locator("figure.chart").count()
        page.screenshot(path=str(tmp_path / "job-report.png"), full_page=True)
    _only_from(log, base)
    assert charts >= 3 and (tmp_path / "job-report.png").stat().st_size > 20_000


def test_signing_in_takes_a_build_token_and_refuses_others(chromium, base, jobs, tmp_path):
    with browser.open_page(chromium, base + "/", javascript=False) as (page, log):
        assert page.locator("form.login").count() == 1
        page.fill("#token", "alice-infer")
        with page.expect_navigation():
            page.click("form.login button")
        assert "inference token" in page.content()
        page.fill("#token", "alice-build")
        with page.expect_navigation():
            page.click("form.login button")
        page.wait_for_selector(f"#job-{jobs['alice'].id}")
        assert page.locator(f"#job-{jobs['bob'].id}").count() == 0
        page.screenshot(path=str(tmp_path / "jobs.png"), full_page=True)
        with page.expect_navigation():
            page.click("text=sign out")
        assert page.locator("form.login").count() == 1
    _only_from(log, base, unauthorized=3)  # the sign-in page is a 401: at first, after the wrong token, signed out


def test_the_status_page_is_off_unless_configured(tmp_path):
    running, _port = create_server("127.0.0.1:0", ServerConfig(data_dir=tmp_path))
    try:
        assert running.status_page is None
    finally:
        shutdown(running, 0)


def test_a_server_with_tls_serves_the_status_page_over_https(tmp_path):
    require(shutil.which("openssl") is not None, "the openssl command makes the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run(
        ["openssl", *request, "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    config = ServerConfig(data_dir=tmp_path / "data", tls_cert=cert, tls_key=key, status_address="127.0.0.1:0")
    running, _port = create_server("127.0.0.1:0", config)
    try:
        url = f"https://127.0.0.1:{running.status_page.port}/"
        with urllib.request.urlopen(url, context=ssl.create_default_context(cafile=str(cert)), timeout=30) as page:
            assert page.status == 200 and "No jobs yet" in page.read().decode()
        with pytest.raises(OSError):  # plain HTTP is refused (the connection is dropped)
            urllib.request.urlopen(url.replace("https", "http"), timeout=30)
    finally:
        shutdown(running, 0)
