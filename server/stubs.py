"""Python stubs for ``protos/``, generated with grpcio-tools on first import (never committed or edited).

``server/gen/`` is rebuilt whenever a ``.proto`` is newer than its stubs; generation happens in a
temporary directory that is renamed into place, under a file lock, so concurrent first imports
(test workers, spawned job processes) never see half-written modules.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "protos"
GEN_DIR = Path(__file__).resolve().parent / "gen"
_PACKAGE = "server/gen"  # virtual proto path: generated modules import each other as server.gen.*


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.rglob("*.proto"))


def _stale() -> bool:
    stamp = GEN_DIR / ".stamp"
    if not stamp.exists():
        return True
    built = stamp.stat().st_mtime
    return any(p.stat().st_mtime > built for p in proto_files())


def generate(force: bool = False) -> Path:
    """Generate ``*_pb2.py``/``*_pb2_grpc.py`` for every proto into ``server/gen``; return that directory."""
    if not force and not _stale():
        return GEN_DIR
    GEN_DIR.parent.mkdir(parents=True, exist_ok=True)
    lock_path = Path(tempfile.gettempdir()) / f"edgeforge-stubs-{hashlib.sha256(bytes(GEN_DIR)).hexdigest()[:16]}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if force or _stale():
            _generate_into_place()
    return GEN_DIR


def _generate_into_place() -> None:
    from grpc_tools import protoc
    import grpc_tools

    with tempfile.TemporaryDirectory(dir=GEN_DIR.parent, prefix=".gen-") as tmp:
        include = Path(grpc_tools.__file__).parent / "_proto"
        protos = [f"{_PACKAGE}/{p.relative_to(PROTO_DIR)}" for p in proto_files()]
        args = ["grpc_tools.protoc", f"-I{_PACKAGE}={PROTO_DIR}", f"-I{include}",
                f"--python_out={tmp}", f"--grpc_python_out={tmp}", f"--pyi_out={tmp}", *protos]
        if protoc.main(args) != 0:
            raise RuntimeError(f"grpc_tools.protoc failed on {protos}")
        built = Path(tmp) / _PACKAGE
        for directory in [built, *[d for d in built.rglob("*") if d.is_dir()]]:
            (directory / "__init__.py").touch()
        (built / ".stamp").touch()
        old = Path(tempfile.mkdtemp(dir=GEN_DIR.parent, prefix=".gen-old-"))
        if GEN_DIR.exists():
            os.replace(GEN_DIR, old / "gen")
        os.replace(built, GEN_DIR)
        shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":
    print(generate(force=True))
