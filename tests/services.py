"""Throwaway Redis and PostgreSQL servers on free loopback ports, for tests and bench/scaleout.py.

Both come from Debian (``redis-server``; ``postgresql``: ``initdb``/``pg_ctl``), run from a temporary folder and
are stopped (and their files removed) at the end. PostgreSQL refuses to run as root: as root the cluster belongs
to the ``postgres`` user the Debian package creates (or ``nobody``) and is started through ``setpriv``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return next((str(d / name) for d in PG_BIN_DIRS if (d / name).is_file()), None)


def have_redis() -> bool:
    return shutil.which("redis-server") is not None


def have_postgres() -> bool:
    return pg_tool("initdb") is not None and pg_tool("pg_ctl") is not None


def _wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Redis on a free loopback port, without persistence; yields its URL."""
    port = free_port()
    folder = tempfile.mkdtemp(prefix="edgeforge-redis-")
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", folder],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


def _as_user() -> tuple[list[str], int, int]:
    """The command prefix that runs PostgreSQL's tools as a non-root user (none when not root), uid, gid."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid()
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            prefix = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", "--"]
            return prefix, entry.pw_uid, entry.pw_gid
    raise RuntimeError("no postgres or nobody user to run PostgreSQL as")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A fresh PostgreSQL cluster on a free loopback port (trust auth, loopback only); yields its URL."""
    prefix, uid, gid = _as_user()
    folder = Path(tempfile.mkdtemp(prefix="edgeforge-pg-"))
    os.chown(folder, uid, gid)
    data, port = folder / "data", free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(folder)}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT, "env": env, "cwd": folder}
    initdb, pg_ctl = pg_tool("initdb"), pg_tool("pg_ctl")
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", "edgeforge", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True, **quiet,
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} -c fsync=off"
    subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "-t", "60", "start"],
        check=True, **quiet,
    )  # fmt: skip
    try:
        _wait_port(port)
        yield f"postgresql://edgeforge@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], **quiet)
        shutil.rmtree(folder, ignore_errors=True)
