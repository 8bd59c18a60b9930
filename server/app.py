"""Build the gRPC server: ``create_server(address, config) -> (server, port)``; ``serve()`` runs it."""

from __future__ import annotations

import signal
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from server.admission import ByteBudget, IdleWatchdog, StreamAdmission, StreamSlots
from server.auth import AuthInterceptor
from server.compression import CompressionServicer
from server.compression import add_to_server as add_compression
from server.config import ServerConfig
from server.inference.batcher import Batcher
from server.inference.repository import ModelRepository
from server.inference.rest import create_rest_server
from server.inference.servicer import InferenceServicer
from server.inference.servicer import add_to_server as add_inference
from server.interceptors import ErrorInterceptor
from server.jobs.service import JobService
from server.status_page import start_status_page

VERSION = "0.1.0"
SIGNAL_POLL_S = 0.5  # how soon the main thread runs a signal handler whose signal another thread received


def _options(config: ServerConfig) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]


def _bind(server: grpc.Server, address: str, config: ServerConfig) -> int:
    if config.tls_cert and config.tls_key:
        creds = grpc.ssl_server_credentials([(config.tls_key.read_bytes(), config.tls_cert.read_bytes())])
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}: address in use or not available")
    return port


def create_server(
    address: str = "127.0.0.1:0", config: ServerConfig | None = None, repository: ModelRepository | None = None
) -> tuple[grpc.Server, int]:
    """A configured, not yet started server and the port it is bound to (``address`` may end in ``:0``)."""
    config = config or ServerConfig()
    repository = repository or ModelRepository(config.inference_threads)
    slots = StreamSlots(config.streams_limit, config.max_streams_per_tenant)
    interceptors = [
        ErrorInterceptor(),
        *([AuthInterceptor(config.tenants)] if config.tenants else []),
        StreamAdmission(slots),  # after auth: it counts streams per tenant
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.rpc_threads, thread_name_prefix="rpc"),
        interceptors=interceptors,
        options=_options(config),
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )
    batcher = Batcher(config.max_batch, config.batch_window_ms / 1000)
    budget = ByteBudget(config.inference_memory_mb << 20)  # one budget for ModelInfer over gRPC and REST
    inference = InferenceServicer(repository, VERSION, batcher, limits=config.limits_for, budget=budget)
    services = [add_inference(inference, server)]
    server.jobs = None  # shutdown() stops the job runner too
    server.slots = slots
    if config.data_dir is not None:
        server.jobs = JobService(config.data_dir, config, repository)
        watchdog = IdleWatchdog(config.upload_idle_s)
        services.append(add_compression(CompressionServicer(server.jobs, watchdog), server))
        server.jobs.start()
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *services):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((*services, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    server.health = health_servicer  # so shutdown can report NOT_SERVING first
    server.status_page = start_status_page(server.jobs, config)  # HTTP, own port; None unless configured
    port = _bind(server, address, config)
    server.rest = None  # OIP v2 over HTTP on the same repository and batcher; shutdown() stops it
    if config.http_port is not None:
        server.rest = create_rest_server(
            address.rpartition(":")[0], config.http_port, repository, batcher, config, VERSION, budget
        )
        server.rest.start()
    return server, port


def serve(address: str, config: ServerConfig, ready: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT, then stop accepting calls and give in-flight ones ``config.grace_s``."""
    server, port = create_server(address, config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(f"edgeforge server listening on port {port}", flush=True)
    if server.rest is not None:
        print(f"OIP v2 over HTTP on port {server.rest.port}", flush=True)
    if server.status_page is not None:
        print(f"status page on http port {server.status_page.port}", flush=True)
    if ready:
        ready.set()
    while not stop.wait(SIGNAL_POLL_S):  # a signal that lands on a gRPC thread wakes no untimed wait: poll
        pass
    shutdown(server, config.grace_s)


def shutdown(server: grpc.Server, grace_s: float) -> None:
    """Report NOT_SERVING, let in-flight RPCs finish for ``grace_s``, then stop running jobs (they fail as
    interrupted)."""
    server.health.enter_graceful_shutdown()
    if server.rest is not None:
        server.rest.stop(grace_s)
    server.stop(grace_s).wait()
    if server.status_page is not None:
        server.status_page.stop()
    if server.jobs is not None:
        server.jobs.stop()
