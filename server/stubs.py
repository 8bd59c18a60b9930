"""Python stubs for ``protos/``, generated with grpcio-tools and committed under ``server/gen/``.

They are generated code: never edit them by hand.  After changing a ``.proto``, run
``python -m server.stubs`` (``make stubs``); ``tests/test_packaging.py`` fails while the committed stubs differ
from what grpcio-tools makes of the protos, so they can never drift.  Committing them (rather than generating
them on first import) keeps the installed package read-only and lets ``pip install .`` ship complete stubs.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "protos"
GEN_DIR = Path(__file__).resolve().parent / "gen"
_PACKAGE = "server/gen"  # virtual proto path: generated modules import each other as server.gen.*


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.rglob("*.proto"))


def generate_into(dest: Path) -> Path:
    """Generate ``*_pb2.py``/``*_pb2_grpc.py``/``*.pyi`` for every proto as the package tree ``dest/server/gen``."""
    from sdkgen.proto_spec import run_protoc

    protos = [f"{_PACKAGE}/{p.relative_to(PROTO_DIR)}" for p in proto_files()]
    run_protoc(
        [f"-I{_PACKAGE}={PROTO_DIR}", f"--python_out={dest}", f"--grpc_python_out={dest}", f"--pyi_out={dest}", *protos]
    )
    built = dest / _PACKAGE
    for directory in [built, *[d for d in built.rglob("*") if d.is_dir()]]:
        (directory / "__init__.py").touch()
    return built


# The grpcio-tools release that generated a *_grpc.py file: a patch release of the tools (1.85.1 -> 1.85.4) is not
# drift from the protos, so staleness ignores it (the stubs only ask the runtime to be at least that release).
_TOOLS_RELEASE = re.compile(rb"^GRPC_GENERATED_VERSION = .*$", re.MULTILINE)


def generated_files(root: Path) -> dict[str, bytes]:
    """Every generated file under ``root`` by relative path, the grpcio-tools release line blanked."""
    return {
        p.relative_to(root).as_posix(): _TOOLS_RELEASE.sub(b"GRPC_GENERATED_VERSION = ...", p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def regenerate() -> Path:
    """Replace ``server/gen`` with freshly generated stubs."""
    with tempfile.TemporaryDirectory(dir=GEN_DIR.parent, prefix=".gen-") as tmp:
        built = generate_into(Path(tmp))
        old = Path(tempfile.mkdtemp(dir=GEN_DIR.parent, prefix=".gen-old-"))
        if GEN_DIR.exists():
            os.replace(GEN_DIR, old / "gen")
        os.replace(built, GEN_DIR)
        shutil.rmtree(old, ignore_errors=True)
    return GEN_DIR


def stale() -> list[str]:
    """Paths under ``server/gen`` that differ from (or are missing against) a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generated_files(generate_into(Path(tmp)))
    committed = generated_files(GEN_DIR) if GEN_DIR.exists() else {}
    return sorted(name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name))


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        differing = stale()
        print(
            "stubs are current" if not differing else f"stale stubs: {', '.join(differing)}; run python -m server.stubs"
        )
        sys.exit(1 if differing else 0)
    print(regenerate())
