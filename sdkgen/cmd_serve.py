"""``sdkgen serve``: run the gRPC server (CompressionService + OIP v2 inference) in one process.

Jobs are built on this machine by default; ``--executor rq --queue redis://... --store postgresql://...
--artifacts DIR_OR_URL`` queues them for ``sdkgen worker`` processes on any number of machines instead.

Safe by default: it listens on 127.0.0.1 unless ``--host`` says otherwise, refuses to listen beyond
loopback without ``--auth`` (unless ``--insecure``), and runs every job in the sandbox.  ``--config``
takes a TOML file of server settings (``server/config.py``: admission limits, a ``[sandbox]`` section);
flags given on the command line win over it.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import tomllib
from pathlib import Path

from pydantic import ValidationError

from compressor.errors import InvalidInputError
from sdkgen.commands import command

LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=50051, help="port (default 50051; 0 picks a free one)")
    parser.add_argument("--http-port", type=int, help="also serve OIP v2 over HTTP/REST on this port (default off)")
    parser.add_argument("--data-dir", type=Path, required=True, help="job store (SQLite), uploads and artifacts")
    parser.add_argument("--config", type=Path, help="TOML file of server settings, e.g. a [sandbox] section")
    parser.add_argument("--max-concurrent-jobs", type=int, help="jobs built at once (default 1)")
    parser.add_argument("--job-timeout", type=float, help="seconds a job may run (default 3600)")
    parser.add_argument("--max-upload-mb", type=float, help="largest model+data upload (default 2048)")
    parser.add_argument("--max-message-mb", type=float, help="largest gRPC message (default 16)")
    parser.add_argument("--max-batch", type=int, help="ModelInfer dynamic batching: most rows run together (default 1)")
    parser.add_argument(
        "--batch-window-ms", type=float, help="with --max-batch: how long a batch waits for more requests (default 0)"
    )
    parser.add_argument("--auth", type=Path, help="TOML file of [[tenants]] with name and tokens (or their sha256)")
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate chain (with --tls-key) to serve TLS")
    parser.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow listening beyond this machine without --auth (anyone who can connect may submit jobs)",
    )
    parser.add_argument(
        "--status-port", type=int, help="serve a read-only HTTP status page of the jobs on this port (default off)"
    )
    parser.add_argument(
        "--executor",
        choices=("local", "rq"),
        help="local: build jobs on this machine (default); rq: queue them in Redis for `sdkgen worker` processes",
    )
    parser.add_argument("--queue", help="with --executor rq: the Redis URL of the job queue, redis://HOST:6379/0")
    parser.add_argument(
        "--store", help="job store URL: postgresql://... for several nodes (default: SQLite in --data-dir)"
    )
    parser.add_argument("--artifacts", help="artifact store: a shared folder or fsspec URL (default: in --data-dir)")
    parser.add_argument("--job-retries", type=int, help="with --executor rq: runs again of a job whose worker died (2)")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 in brackets or not) only reaches this machine."""
    host = host.strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, auth: Path | None, insecure: bool) -> None:
    """Refuse to serve beyond loopback without bearer tokens, unless the operator said ``--insecure``."""
    if auth is None and not insecure and not is_loopback(host):
        raise InvalidInputError(
            f"refusing to listen on {host} without --auth: every client that can reach it could run jobs and read "
            "every model. Give --auth tenants.toml, listen on 127.0.0.1 (the default), or pass --insecure if the "
            "network is trusted"
        )


_FLAGS = {  # flag -> (ServerConfig field, conversion)
    "max_concurrent_jobs": ("max_concurrent_jobs", int),
    "job_timeout": ("job_timeout_s", float),
    "max_upload_mb": ("max_upload_bytes", lambda v: int(v * (1 << 20))),
    "max_message_mb": ("max_message_bytes", lambda v: int(v * (1 << 20))),
    "max_batch": ("max_batch", int),
    "batch_window_ms": ("batch_window_ms", float),
    "executor": ("executor", str),
    "queue": ("queue_url", str),
    "store": ("store_url", str),
    "artifacts": ("artifacts_url", str),
    "job_retries": ("job_retries", int),
}


def config_from(args: argparse.Namespace):
    from server.config import ServerConfig

    if bool(args.tls_cert) != bool(args.tls_key):
        raise InvalidInputError("TLS needs both --tls-cert and --tls-key")
    check_exposure(args.host, args.auth, args.insecure)
    try:
        settings = tomllib.loads(args.config.read_text()) if args.config else {}
        tenants = tomllib.loads(args.auth.read_text()).get("tenants", []) if args.auth else []
        for flag, (field, convert) in _FLAGS.items():
            if getattr(args, flag, None) is not None:
                settings[field] = convert(getattr(args, flag))
        secrets = tuple(Path(p).resolve() for p in (args.auth, args.tls_key, args.config) if p)
        return ServerConfig(
            **settings,
            data_dir=args.data_dir,
            tenants=tenants,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            http_port=args.http_port,
            status_address=None if args.status_port is None else f"{args.host}:{args.status_port}",
            secret_paths=secrets,
        )
    except (OSError, tomllib.TOMLDecodeError, ValidationError, TypeError) as exc:
        raise InvalidInputError(f"server settings are invalid: {exc}") from None


@command("serve", "Run the EdgeForge gRPC server: compression jobs and Open Inference Protocol v2 serving.")
def run(args: argparse.Namespace) -> int:
    from server.app import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(f"{args.host}:{args.port}", config_from(args))
    return 0
