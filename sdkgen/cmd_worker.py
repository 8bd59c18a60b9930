"""``sdkgen worker``: build jobs of a ``sdkgen serve --executor rq`` server, on this or any other machine.

The worker needs the project installed, bubblewrap (the same sandbox as the server's local executor), and the
three URLs the server uses: ``--queue`` (Redis), ``--store`` (the job store, PostgreSQL for several machines) and
``--artifacts`` (a folder every node mounts, or an fsspec URL such as ``s3://bucket/edgeforge``).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import tempfile
import tomllib
from pathlib import Path

from pydantic import ValidationError

from compressor.errors import InvalidInputError
from sdkgen.commands import command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue", required=True, help="Redis URL of the job queue, e.g. redis://build-db:6379/0")
    parser.add_argument("--store", required=True, help="job store URL, e.g. postgresql://edgeforge@build-db/edgeforge")
    parser.add_argument("--artifacts", required=True, help="artifact store: a shared folder or an fsspec URL")
    parser.add_argument("--work-dir", type=Path, help="this worker's scratch folder (default: a new temporary one)")
    parser.add_argument("--name", help="worker name, unique in the queue (default: HOST-PID)")
    parser.add_argument("--heartbeat", type=int, help="seconds between heartbeats (default 10); a lost worker's job "
                        "is retried elsewhere after about two")  # fmt: skip
    parser.add_argument("--config", type=Path, help="TOML file of worker settings, e.g. a [sandbox] section")
    parser.add_argument("--burst", action="store_true", help="stop once the queue is empty")


def config_from(args: argparse.Namespace):
    from server.config import WorkerConfig

    try:
        settings = tomllib.loads(args.config.read_text()) if args.config else {}
        if args.heartbeat is not None:
            settings["heartbeat_s"] = args.heartbeat
        return WorkerConfig(
            **settings,
            queue_url=args.queue,
            store_url=args.store,
            artifacts_url=args.artifacts,
            work_dir=args.work_dir or Path(tempfile.mkdtemp(prefix="edgeforge-worker-")),
            name=args.name or f"{socket.gethostname()}-{os.getpid()}",
            burst=args.burst,
            secret_paths=(args.config.resolve(),) if args.config else (),
        )
    except (OSError, tomllib.TOMLDecodeError, ValidationError, TypeError) as exc:
        raise InvalidInputError(f"worker settings are invalid: {exc}") from None


@command("worker", "Build queued jobs of an `sdkgen serve --executor rq` server (Redis queue, shared stores).")
def run(args: argparse.Namespace) -> int:
    from server.worker_main import run as run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_worker(config_from(args))
