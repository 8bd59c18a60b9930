"""``sdkgen serve``: run the gRPC server (CompressionService + OIP v2 inference) in one process."""

from __future__ import annotations

import argparse
import logging
import tomllib
from pathlib import Path

from pydantic import ValidationError

from compressor.errors import InvalidInputError
from sdkgen.commands import command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="[::]", help="address to listen on (default all interfaces)")
    parser.add_argument("--port", type=int, default=50051, help="port (default 50051; 0 picks a free one)")
    parser.add_argument("--http-port", type=int, help="also serve OIP v2 over HTTP/REST on this port (default off)")
    parser.add_argument("--data-dir", type=Path, required=True, help="job store (SQLite), uploads and artifacts")
    parser.add_argument("--max-concurrent-jobs", type=int, default=1, help="jobs built at once (default 1)")
    parser.add_argument("--job-timeout", type=float, default=3600, help="seconds a job may run (default 3600)")
    parser.add_argument("--max-upload-mb", type=float, default=2048, help="largest model+data upload (default 2048)")
    parser.add_argument("--max-message-mb", type=float, default=64, help="largest gRPC message (default 64)")
    parser.add_argument(
        "--max-batch", type=int, default=1, help="ModelInfer dynamic batching: most rows run together (default 1: off)"
    )
    parser.add_argument(
        "--batch-window-ms",
        type=float,
        default=0.0,
        help="with --max-batch: how long a batch waits for more requests (default 0: only queued ones)",
    )
    parser.add_argument("--auth", type=Path, help="TOML file of [[tenants]] with name, build_tokens, inference_tokens")
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate chain (with --tls-key) to serve TLS")
    parser.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    parser.add_argument(
        "--status-port", type=int, help="serve a read-only HTTP status page of the jobs on this port (default off)"
    )


def config_from(args: argparse.Namespace):
    from server.config import MiB, ServerConfig

    if bool(args.tls_cert) != bool(args.tls_key):
        raise InvalidInputError("TLS needs both --tls-cert and --tls-key")
    try:
        tenants = tomllib.loads(args.auth.read_text()).get("tenants", []) if args.auth else []
        return ServerConfig(
            data_dir=args.data_dir,
            max_concurrent_jobs=args.max_concurrent_jobs,
            job_timeout_s=args.job_timeout,
            max_upload_bytes=int(args.max_upload_mb * MiB),
            max_message_bytes=int(args.max_message_mb * MiB),
            tenants=tenants,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            max_batch=args.max_batch,
            batch_window_ms=args.batch_window_ms,
            http_port=args.http_port,
            status_address=None if args.status_port is None else f"{args.host}:{args.status_port}",
        )
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise InvalidInputError(f"server settings are invalid: {exc}") from None


@command("serve", "Run the EdgeForge gRPC server: compression jobs and Open Inference Protocol v2 serving.")
def run(args: argparse.Namespace) -> int:
    from server.app import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(f"{args.host}:{args.port}", config_from(args))
    return 0
