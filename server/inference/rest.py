"""Open Inference Protocol v2 over HTTP/REST, beside gRPC, on the same model repository and batcher.

Routes (KServe v2 / Triton HTTP): ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2``,
``GET /v2/models/{m}[/versions/{v}]``, ``GET /v2/models/{m}[/versions/{v}]/ready`` and
``POST /v2/models/{m}[/versions/{v}]/infer`` (JSON tensors and the binary tensor data extension).  With tenants
configured every route but health needs ``Authorization: Bearer <inference token>``; a tenant sees only its
models, as over gRPC.  Errors are ``{"error": "..."}`` with the HTTP status for the EdgeForge error.

:func:`create_rest_server` returns a :class:`RestServer` bound to its port; ``start()`` serves it from a
background thread (uvicorn), ``stop()`` ends it.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import grpc
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from compressor.errors import EdgeForgeError, InvalidInputError
from server.admission import ByteBudget
from server.auth import DEFAULT_TENANT, AuthInterceptor
from server.config import ServerConfig
from server.errors import TooLargeError, status_for
from server.inference.batcher import Batcher
from server.inference.repository import ModelRepository
from server.inference.rest_codec import HEADER_LENGTH, decode_request, encode_response, parse_body

SERVER_NAME = "edgeforge"
# gRPC status (from server/errors.py, the one place errors are classified) -> HTTP status
_HTTP = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.DATA_LOSS: 400,
    grpc.StatusCode.UNAVAILABLE: 503,
}


def http_status(exc: BaseException) -> int:
    """The HTTP status for an error raised while serving a request (500 for anything unexpected)."""
    if isinstance(exc, TooLargeError):
        return 413
    return _HTTP.get(status_for(exc), 500)


DRAIN_FACTOR = 4  # an oversized body is read (and dropped) up to this many times the limit before the 413


class _Routes:
    """The handlers: thin HTTP <-> repository glue; decoding and running happen off the event loop."""

    def __init__(
        self, repository: ModelRepository, batcher: Batcher, config: ServerConfig, version: str, budget: ByteBudget
    ) -> None:
        self.repository, self.batcher, self.config, self.version = repository, batcher, config, version
        self.budget = budget
        self.auth = AuthInterceptor(config.tenants) if config.tenants else None

    def tenant(self, request: Request) -> str:
        if self.auth is None:
            return DEFAULT_TENANT
        return self.auth.authorize(request.headers.get("authorization", ""), "inference")

    def model(self, request: Request):
        params = request.path_params
        return self.repository.get(params["model"], params.get("version", ""), self.tenant(request))

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        return JSONResponse({"ready": True})

    async def server_metadata(self, request: Request) -> Response:
        self.tenant(request)
        return JSONResponse({"name": SERVER_NAME, "version": self.version, "extensions": ["binary_tensor_data"]})

    async def model_metadata(self, request: Request) -> Response:
        model = self.model(request)

        def tensors(specs):
            return [{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)} for s in specs]

        versions = self.repository.versions(model.name, self.tenant(request))
        return JSONResponse(
            {
                "name": model.name,
                "versions": versions,
                "platform": "onnxruntime_onnx",
                "inputs": tensors(model.inputs),
                "outputs": tensors(model.outputs),
            }
        )

    async def model_ready(self, request: Request) -> Response:
        model = self.model(request)  # NotFoundError -> 404: not ready
        return JSONResponse({"name": model.name, "ready": True})

    async def infer(self, request: Request) -> Response:
        model = self.model(request)
        body = await self._body(request)
        header_length = request.headers.get(HEADER_LENGTH)
        content, json_length = await run_in_threadpool(self._run, model, body, header_length)
        if json_length is None:
            return Response(content, media_type="application/json")
        return Response(
            content,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(json_length)},
        )

    def _run(self, model, body: bytes, header_length: str | None) -> tuple[bytes, int | None]:
        self.budget.reserve(len(body))  # the same byte budget as ModelInfer: past it a call is refused, not queued
        try:
            document, binary = parse_body(body, header_length)
            decoded = decode_request(model, document, binary, *self.config.limits_for(model.name))
            return encode_response(model, decoded, self.batcher.run(model, decoded.feeds, decoded.outputs))
        finally:
            self.budget.release(len(body))

    async def _body(self, request: Request) -> bytes:
        """The request body, refused with 413 past the server's message limit (as gRPC refuses large messages)."""
        limit = self.config.max_message_bytes
        if request.headers.get("content-encoding", "identity") != "identity":
            raise InvalidInputError(
                f"Content-Encoding {request.headers['content-encoding']!r} is not supported; send the body uncompressed"
            )
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            await self._discard(request, DRAIN_FACTOR * limit)
            raise TooLargeError(f"the request body has {declared} bytes; this server takes at most {limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                await self._discard(request, DRAIN_FACTOR * limit)
                raise TooLargeError(f"the request body exceeds {limit} bytes, the most this server takes")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    async def _discard(request: Request, most: int) -> None:
        """Read and drop what the client still sends (up to ``most`` bytes, nothing kept), so that it can read the
        413 answer instead of losing it to a reset connection."""
        seen = 0
        try:
            async for chunk in request.stream():
                seen += len(chunk)
                if seen > most:
                    return
        except Exception:  # noqa: BLE001 - the stream may already be consumed or the client gone
            return


async def _error(request: Request, exc: Exception) -> Response:
    """EdgeForge errors and HTTP errors (unknown route, wrong method) as OIP error JSON with their HTTP status."""
    if isinstance(exc, HTTPException):
        return JSONResponse(
            {"error": f"{request.method} {request.url.path}: {exc.detail}"}, status_code=exc.status_code
        )
    return JSONResponse({"error": str(exc)}, status_code=http_status(exc))


async def _unexpected(request: Request, exc: Exception) -> Response:
    """Anything else: 500 without details (Starlette re-raises it after this answer, so uvicorn logs the traceback)."""
    return JSONResponse({"error": f"internal server error ({type(exc).__name__}); see the server log"}, status_code=500)


def create_app(
    repository: ModelRepository, batcher: Batcher, config: ServerConfig, version: str, budget: ByteBudget | None = None
) -> Starlette:
    """The ASGI application serving ``repository`` (the same one, batcher and byte budget the gRPC servicer uses)."""
    r = _Routes(repository, batcher, config, version, budget or ByteBudget(config.inference_memory_mb << 20))
    routes = [Route("/v2/health/live", r.live), Route("/v2/health/ready", r.ready), Route("/v2", r.server_metadata)]
    for base in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        routes += [
            Route(base, r.model_metadata),
            Route(f"{base}/ready", r.model_ready),
            Route(f"{base}/infer", r.infer, methods=["POST"]),
        ]
    return Starlette(
        routes=routes, exception_handlers={EdgeForgeError: _error, HTTPException: _error, Exception: _unexpected}
    )


class RestServer:
    """uvicorn serving the app on an already bound socket, in a daemon thread."""

    def __init__(self, app: Starlette, sock: socket.socket, config: ServerConfig) -> None:
        import uvicorn

        cert, key = (str(config.tls_cert), str(config.tls_key)) if config.tls_cert else (None, None)
        self.port = sock.getsockname()[1]
        self._socket = sock
        self._server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", ssl_certfile=cert, ssl_keyfile=key)
        )
        self._thread = threading.Thread(target=self._serve, name="oip-rest", daemon=True)

    def _serve(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting requests, give in-flight ones ``grace_s``, then close the socket."""
        if self._thread.is_alive():
            self._server.config.timeout_graceful_shutdown = max(1, round(grace_s))
            self._server.should_exit = True
            self._thread.join(grace_s + 5)
        self._socket.close()


def create_rest_server(
    host: str,
    port: int,
    repository: ModelRepository,
    batcher: Batcher,
    config: ServerConfig,
    version: str,
    budget: ByteBudget | None = None,
) -> RestServer:
    """A :class:`RestServer` bound to ``host``:``port`` (0 picks a free port; see ``.port``), not yet started."""
    host = host.strip("[]") or "::"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets made so; otherwise every
    # response waits out the client's delayed ACK (about 40 ms on Linux)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen for HTTP on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return RestServer(create_app(repository, batcher, config, version, budget), sock, config)
