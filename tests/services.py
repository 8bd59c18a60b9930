"""Redis and PostgreSQL for tests and bench/scaleout.py: real servers from Debian on loopback, never mocks.

``.ci/run`` starts one of each (``python tests/services.py start DIR`` writes ``DIR/env`` with
``EDGEFORGE_TEST_REDIS`` and ``EDGEFORGE_TEST_POSTGRES``; ``stop DIR`` ends them). When those variables are set,
:func:`redis_server` hands each caller its own Redis database number (flushed afterwards) and
:func:`postgres_server` its own fresh database (dropped afterwards); without them each call starts a throwaway
server on a free port from a temporary folder. PostgreSQL refuses to run as root: as root the cluster belongs to
the ``postgres`` user the Debian package creates (or ``nobody``) and is started through ``setpriv``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
REDIS_ENV, POSTGRES_ENV = "EDGEFORGE_TEST_REDIS", "EDGEFORGE_TEST_POSTGRES"


def _redis_dbs() -> Iterator[int]:
    """Databases 1-15 of the shared Redis, split between pytest-xdist's workers so that no two tests share one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1... (unset without xdist)
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker[2:]) if worker.startswith("gw") else 0
    mine = [db for db in range(1, 16) if db % count == index % count]
    if not mine:
        raise RuntimeError(f"{count} pytest-xdist workers share 15 Redis databases: use 15 workers at most")
    return itertools.cycle(mine)


_REDIS_DBS = _redis_dbs()


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


def _start_redis(folder: Path) -> str:
    """A daemonized Redis on a free loopback port, without persistence, its files in ``folder``; its URL."""
    port = free_port()
    subprocess.run(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--daemonize", "yes", "--pidfile", str(folder / "redis.pid"),
         "--logfile", str(folder / "redis.log")],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_port(port)
    return f"redis://127.0.0.1:{port}/0"


def _stop_redis(folder: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        pid = int((folder / "redis.pid").read_text())
        os.kill(pid, 15)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Redis database of one's own; yields its URL."""
    shared = os.environ.get(REDIS_ENV)
    if shared:
        from redis import Redis

        url = f"{shared.rsplit('/', 1)[0]}/{next(_REDIS_DBS)}"
        Redis.from_url(url).flushdb()
        try:
            yield url
        finally:
            Redis.from_url(url).flushdb()
        return
    folder = Path(tempfile.mkdtemp(prefix="edgeforge-redis-"))
    try:
        yield _start_redis(folder)
    finally:
        _stop_redis(folder)
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


def _pg_run(folder: Path, *argv: str, check: bool = True) -> None:
    prefix, _, _ = _as_user()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(folder)}
    subprocess.run([*prefix, *argv], check=check, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env,
                   cwd=folder)  # fmt: skip


def _start_postgres(folder: Path) -> str:
    """A fresh cluster in ``folder`` on a free loopback port (trust auth, loopback only); its URL."""
    _, uid, gid = _as_user()
    os.chown(folder, uid, gid)
    data, port = folder / "data", free_port()
    _pg_run(folder, str(pg_tool("initdb")), "-D", str(data), "-U", "edgeforge", "--auth=trust", "-E", "UTF8",
            "--no-sync")  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} -c fsync=off"
    _pg_run(folder, str(pg_tool("pg_ctl")), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w",
            "-t", "60", "start")  # fmt: skip
    _wait_port(port)
    return f"postgresql://edgeforge@127.0.0.1:{port}/postgres"


def _stop_postgres(folder: Path) -> None:
    if (folder / "data").is_dir():
        _pg_run(folder, str(pg_tool("pg_ctl")), "-D", str(folder / "data"), "-m", "immediate", "-w", "stop",
                check=False)  # fmt: skip


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL database of one's own; yields its URL."""
    shared = os.environ.get(POSTGRES_ENV)
    if shared:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(shared, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        try:
            yield f"{shared.rsplit('/', 1)[0]}/{name}"
        finally:
            with psycopg.connect(shared, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        return
    folder = Path(tempfile.mkdtemp(prefix="edgeforge-pg-"))
    try:
        yield _start_postgres(folder)
    finally:
        _stop_postgres(folder)
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    """``start DIR``: Redis and PostgreSQL for a test run, ``DIR/env`` to source; ``stop DIR``: end both."""
    command, folder = argv[0], Path(argv[1])
    if command == "start":
        folder.chmod(0o755)  # the postgres user must reach its cluster's folder inside
        (folder / "redis").mkdir(parents=True, exist_ok=True)
        (folder / "postgres").mkdir(parents=True, exist_ok=True)
        redis_url = _start_redis(folder / "redis")
        postgres_url = _start_postgres(folder / "postgres")
        (folder / "env").write_text(f"export {REDIS_ENV}={redis_url}\nexport {POSTGRES_ENV}={postgres_url}\n")
        print(f"redis at {redis_url}, postgresql at {postgres_url}")
    else:
        _stop_redis(folder / "redis")
        _stop_postgres(folder / "postgres")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
