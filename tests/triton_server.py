"""Triton Inference Server (the binary from PyPI's nvidia-pytriton wheel, see oip_venv.py) on loopback, for tests."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import oip_venv
from support import require, wait_for


@dataclass(frozen=True)
class Triton:
    http: str  # HOST:PORT
    grpc: str
    log: Path

    def repository_index(self) -> list[dict]:
        """Triton's own view of its model repository: every model with its state and the reason for it."""
        request = urllib.request.Request(f"http://{self.http}/v2/repository/index", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def venv() -> Path:
    """The isolated venv; locally a failed install (no registry) skips, in CI it fails."""
    try:
        return oip_venv.ensure()
    except (subprocess.CalledProcessError, OSError) as exc:
        require(False, f"cannot create the isolated OIP venv {oip_venv.VENV}: {exc}")
        raise


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running(repository: Path, log: Path, *, all_models_load: bool = True) -> Iterator[Triton]:
    """``tritonserver`` serving ``repository`` on loopback until the block ends.

    With ``all_models_load`` it waits until the server is ready (every model loaded); otherwise it keeps running
    whatever fails to load (``--exit-on-error false``) and waits only until it is live.
    """
    venv()
    http, grpc = _free_port(), _free_port()
    command = [
        str(oip_venv.tritonserver_root() / "bin" / "tritonserver"),
        f"--model-repository={repository}",
        f"--backend-directory={oip_venv.backends_dir()}",
        "--http-address=127.0.0.1",
        f"--http-port={http}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc}",
        "--allow-metrics=false",
        "--disable-auto-complete-config",  # the config is taken as written: nothing is filled in from the model
        f"--exit-on-error={'true' if all_models_load else 'false'}",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=oip_venv.triton_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        probe = f"http://127.0.0.1:{http}/v2/health/{'ready' if all_models_load else 'live'}"

        def up():
            if process.poll() is not None:
                raise AssertionError(f"tritonserver exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            return _answers(probe)

        wait_for(up, timeout=300, what=f"tritonserver on {repository}")
        yield Triton(f"127.0.0.1:{http}", f"127.0.0.1:{grpc}", log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
