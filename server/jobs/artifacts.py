"""The artifact store: each finished job's results on disk, committed atomically with sha256 per file.

A job's artifacts live in ``<root>/<job_id>/`` with ``index.json`` written last; the directory is
renamed into place only when complete, so a crash leaves either nothing or everything.  Top-level
directories of a build (the SDKs, candidates) are stored as deterministic zip archives.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from compressor.sources import sha256_file
from server.errors import ChecksumError, NotFoundError, WorkerProtocolError

INDEX = "index.json"
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ArtifactInfo:
    name: str
    size: int
    sha256: str
    archive: bool


def zip_dir(source: Path, dest: Path) -> None:
    """Zip ``source`` with sorted entries, fixed timestamps and file modes (byte-identical for equal trees)."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), _EPOCH)
            info.external_attr = (path.stat().st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())


MAX_UNZIPPED_BYTES = 16 << 30
MAX_ZIP_ENTRIES = 100_000


def unzip_dir(archive_path: Path, dest: Path, max_bytes: int = MAX_UNZIPPED_BYTES) -> None:
    """Extract a :func:`zip_dir` archive into ``dest``, restoring file modes; refuses paths leaving ``dest`` and
    archives that would decompress past ``max_bytes`` (checked on the declared sizes before extracting)."""
    root = dest.resolve()
    with zipfile.ZipFile(archive_path) as archive:
        infos = archive.infolist()
        total = sum(i.file_size for i in infos)
        if total > max_bytes or len(infos) > MAX_ZIP_ENTRIES:
            raise ChecksumError(
                f"archive {archive_path.name} would unpack {len(infos)} entries, {total} bytes; at most "
                f"{MAX_ZIP_ENTRIES} entries and {max_bytes} bytes are accepted"
            )
        for info in infos:
            target = (dest / info.filename).resolve()
            if not target.is_relative_to(root):
                raise ChecksumError(f"archive {archive_path.name} holds an entry outside its folder: {info.filename}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(info))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)


MAX_OUTPUT_FILES = 20_000


def check_tree(root: Path) -> None:
    """Refuse a build output holding anything but plain folders and files (a symlink, fifo or device made by
    the sandboxed build could point the server, which reads the output, at files outside the job)."""
    count = 0
    for directory, folders, files in os.walk(root):
        for name in [*folders, *files]:
            path = Path(directory) / name
            mode = os.lstat(path).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise WorkerProtocolError(
                    f"the build output holds {path.relative_to(root)}, which is not a plain file or folder"
                )
            count += 1
    if count > MAX_OUTPUT_FILES:
        raise WorkerProtocolError(f"the build output holds {count} entries, more than {MAX_OUTPUT_FILES}")


def _fsync_tree(path: Path) -> None:
    for p in [*path.rglob("*"), path]:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".staging-*"):  # left by a crash mid-commit: never visible
            shutil.rmtree(stale, ignore_errors=True)

    def commit(self, job_id: str, build_dir: Path) -> list[ArtifactInfo]:
        """Store a finished build's outputs for ``job_id``; returns what is downloadable."""
        staging = self.root / f".staging-{job_id}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        infos = []
        for entry in sorted(build_dir.iterdir()):
            name = f"{entry.name}.zip" if entry.is_dir() else entry.name
            if entry.is_dir():
                zip_dir(entry, staging / name)
            else:
                shutil.copyfile(entry, staging / name)
            infos.append(
                ArtifactInfo(name, (staging / name).stat().st_size, sha256_file(staging / name), entry.is_dir())
            )
        (staging / INDEX).write_text(json.dumps([asdict(i) for i in infos], indent=1))
        _fsync_tree(staging)
        final = self.root / job_id
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        return infos

    def list(self, job_id: str) -> list[ArtifactInfo]:
        index = self.root / job_id / INDEX
        if not index.exists():
            return []
        return [ArtifactInfo(**i) for i in json.loads(index.read_text())]

    def path(self, job_id: str, name: str) -> tuple[Path, ArtifactInfo]:
        """The stored file and its recorded info; NotFoundError lists the artifacts that exist."""
        infos = {i.name: i for i in self.list(job_id)}
        if name not in infos:
            known = ", ".join(infos) or "(none)"
            raise NotFoundError(f"job {job_id} has no artifact {name!r}; its artifacts: {known}")
        return self.root / job_id / name, infos[name]

    def read_chunks(self, job_id: str, name: str, offset: int, chunk: int):
        """Yield (info, offset, bytes) from ``offset``; the whole file is re-hashed and a mismatch raises."""
        path, info = self.path(job_id, name)
        digest = hashlib.sha256()
        position = 0
        if info.size == 0:
            yield info, 0, b""
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(chunk), b""):
                digest.update(block)
                end = position + len(block)
                if end > offset:
                    yield info, max(position, offset), block[max(0, offset - position) :]
                position = end
        if digest.hexdigest() != info.sha256:
            raise ChecksumError(
                f"artifact {name} of job {job_id} no longer matches its recorded sha256; "
                "the stored file is corrupt (rebuild the job)"
            )
