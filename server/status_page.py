"""The read-only HTTP status page: a tenant's jobs with state and live progress, each job's report, downloads.

Off by default; ``ServerConfig.status_address`` (``sdkgen serve --status-port N``) turns it on, on a port of its
own.  It reads the same job and artifact stores as CompressionService and knows the same tenants: a build token
(``Authorization: Bearer <token>``, or entered once in the page's form, which keeps it in an HttpOnly cookie)
shows that tenant's jobs only; with auth off every job belongs to tenant ``default``.  Pages are plain HTML from
``templates/status/`` that refresh themselves while a job runs, so they work with JavaScript off.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from sdkgen.render import TEMPLATES as SDK_TEMPLATES
from server.auth import DEFAULT_TENANT, AuthInterceptor
from server.config import ServerConfig, Tenant
from server.errors import NotFoundError
from server.jobs.service import JobService

TEMPLATES = SDK_TEMPLATES / "status"  # package data (the repository's templates/status)
COOKIE = "edgeforge_token"
REPORT = "report.html"
REFRESH_S = 2  # how often a page showing an unfinished job reloads itself
EVENTS_SHOWN = 12
# The job's report is a self-contained page: let it style itself and show inline images, nothing else.
REPORT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
    "X-Content-Type-Options": "nosniff",
}


class _Tenants:
    """Which tenant a request is: from its bearer token or cookie; ``None`` when it is not signed in."""

    def __init__(self, tenants: tuple[Tenant, ...]) -> None:
        self.enabled = bool(tenants)
        self._tokens = AuthInterceptor(tenants)  # the gRPC side's digests and constant-time comparison

    def of(self, request: Request) -> tuple[str | None, str]:
        """``(tenant, problem)``: the caller's tenant, or ``None`` and why it has none."""
        if not self.enabled:
            return DEFAULT_TENANT, ""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
        if not token:
            return None, "missing"
        found = self._tokens.lookup(token)
        if found is not None and found[1] == "build":
            return found[0], ""
        return None, "inference" if found is not None else "unknown"


class _Pages:
    """The page handlers; each resolves the caller's tenant first and shows only that tenant's jobs."""

    def __init__(self, jobs: JobService, tenants: tuple[Tenant, ...]) -> None:
        self.jobs, self.who = jobs, _Tenants(tenants)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined, autoescape=True
        )

    def page(self, name: str, status: int = 200, refresh: int | None = None, **context) -> HTMLResponse:
        html = self.env.get_template(name).render(auth=self.who.enabled, refresh=refresh, **context)
        return HTMLResponse(html, status_code=status)

    def _job(self, request: Request):
        """``(tenant, job)`` for the request, or a login (401) or not-found (404) response."""
        tenant, problem = self.who.of(request)
        if tenant is None:
            return self.page("login.html.j2", 401, problem=problem)
        try:
            return tenant, self.jobs.get(tenant, request.path_params["job_id"])
        except NotFoundError:
            return self.page("missing.html.j2", 404, tenant=tenant, job_id=request.path_params["job_id"], artifact="")

    def index(self, request: Request) -> Response:
        tenant, problem = self.who.of(request)
        if tenant is None:
            return self.page("login.html.j2", 401, problem=problem)
        listed = self.jobs.list(tenant, None, 200)
        refresh = REFRESH_S if any(not j.finished for j in listed) else None
        return self.page("jobs.html.j2", refresh=refresh, tenant=tenant, jobs=listed)

    def job(self, request: Request) -> Response:
        found = self._job(request)
        if isinstance(found, Response):
            return found
        tenant, job = found
        artifacts = self.jobs.artifact_list(job)
        return self.page(
            "job.html.j2",
            refresh=None if job.finished else REFRESH_S,
            tenant=tenant,
            job=job,
            events=self.jobs.store.events(job.id, 0)[-EVENTS_SHOWN:],
            artifacts=artifacts,
            report=any(a.name == REPORT for a in artifacts),
        )

    def artifact(self, request: Request) -> Response:
        """A stored artifact as a download, or (without a name) the job's report as a page."""
        found = self._job(request)
        if isinstance(found, Response):
            return found
        tenant, job = found
        name = request.path_params.get("name", REPORT)
        if name not in {a.name for a in self.jobs.artifact_list(job)}:
            return self.page("missing.html.j2", 404, tenant=tenant, job_id=job.id, artifact=name)
        path, _info = self.jobs.artifact_path(job, name)
        if "name" not in request.path_params:
            return FileResponse(path, media_type="text/html; charset=utf-8", headers=REPORT_HEADERS)
        return FileResponse(path, filename=name, media_type="application/octet-stream")

    async def login(self, request: Request) -> Response:
        """The sign-in form posts a build token; it is kept in an HttpOnly cookie for the next pages."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, (form.get("token") or [""])[0].strip(), httponly=True, samesite="strict")
        return response

    def logout(self, request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        return response


def create_app(jobs: JobService, tenants: tuple[Tenant, ...]) -> Starlette:
    """The Starlette application of the status page over ``jobs`` (read-only: nothing it serves changes a job)."""
    pages = _Pages(jobs, tenants)
    return Starlette(
        routes=[
            Route("/", pages.index),
            Route("/jobs/{job_id}", pages.job),
            Route("/jobs/{job_id}/report", pages.artifact),
            Route("/jobs/{job_id}/artifacts/{name}", pages.artifact),
            Route("/login", pages.login, methods=["POST"]),
            Route("/logout", pages.logout, methods=["POST"]),
            Route("/healthz", lambda request: PlainTextResponse("ok")),
        ]
    )


class StatusPage:
    """The status page served by uvicorn in a background thread; :meth:`stop` ends it."""

    def __init__(self, jobs: JobService, tenants: tuple[Tenant, ...], tls: tuple[Path, Path] | None = None) -> None:
        self.app = create_app(jobs, tenants)
        self.tls = tls  # (certificate chain, private key): serve HTTPS, as the gRPC port does
        self.port = 0
        self._server: Any = None  # uvicorn.Server once started
        self._thread: threading.Thread | None = None

    def start(self, address: str, timeout_s: float = 10.0) -> StatusPage:
        """Listen on ``address`` (``host:port``, port 0 picks one; ``[::]`` for all interfaces) and serve."""
        import uvicorn

        sock = _listen(address)
        self.port = sock.getsockname()[1]
        cert, key = self.tls or (None, None)
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", ssl_certfile=cert, ssl_keyfile=key
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="status-page", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._server.started:
            self.stop()
            raise OSError(f"the status page did not start on {address}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def start_status_page(jobs: JobService | None, config: ServerConfig) -> StatusPage | None:
    """The running status page when ``config.status_address`` asks for one (it needs the job store), else None.

    A server with TLS serves the page over HTTPS with the same certificate.
    """
    if config.status_address is None:
        return None
    if jobs is None:
        raise ValueError("the status page shows jobs, so it needs a data directory (ServerConfig.data_dir)")
    tls = (config.tls_cert, config.tls_key) if config.tls_cert and config.tls_key else None
    return StatusPage(jobs, config.tenants, tls).start(config.status_address)


def _listen(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise OSError(f"the status page cannot listen on {address}: {exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
