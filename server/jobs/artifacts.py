"""The artifact store: each finished job's results, committed atomically with sha256 per file, on any fsspec
file system (a local folder by default; ``s3://bucket/prefix`` and the like by configuration).

A commit's files live under ``<root>/<key>/`` (the key is the job id, or ``<job_id>/a<attempt>`` for a queue
worker's attempt) and ``index.json`` is written last, in one step (a rename on a local disk, a single PUT on an
object store): readers see only indexed commits, so a crash leaves either nothing visible or everything.  Top-level
directories of a build (the SDKs, candidates) are stored as deterministic zip archives.  Besides the downloadable
artifacts a commit may hold *served* files (the cloud model and split tail the inference side loads), listed in
``served.json``.  ``.uploads/<job_id>/`` holds a queued job's uploaded files until a worker has taken them.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import shutil
import stat
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import fsspec

from compressor.errors import InvalidInputError
from server.errors import ChecksumError, NotFoundError, WorkerProtocolError

INDEX, SERVED, UPLOADS = "index.json", "served.json", ".uploads"
COPY_BLOCK = 1 << 20
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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(COPY_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


class ArtifactStore:
    """Commits, lists and streams artifacts under ``location`` (a folder or an fsspec URL)."""

    def __init__(self, location: str | Path, *, clean_stale: bool = True) -> None:
        try:
            self.fs, root = fsspec.core.url_to_fs(str(location))
        except (ValueError, ImportError) as exc:
            raise InvalidInputError(
                f"artifact store {location!r} is not a usable fsspec URL ({exc}); give a folder, file:///PATH or a "
                "URL whose fsspec implementation is installed (e.g. s3:// with s3fs)"
            ) from None
        self.root = root.rstrip("/")
        self.local = "file" in _protocols(self.fs)
        self.fs.makedirs(self.root, exist_ok=True)
        if clean_stale and self.local:  # the embedded server's own folder: leftovers of a crash mid-commit
            for stale in Path(self.root).glob(".staging-*"):
                shutil.rmtree(stale, ignore_errors=True)

    def _at(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def commit(self, key: str, build_dir: Path, served: dict[str, Path] | None = None) -> builtins.list[ArtifactInfo]:
        """Store a finished build's outputs (and the ``served`` files) under ``key``; returns what is downloadable."""
        self.discard(key)  # an earlier commit of this key that crashed before its index
        infos = []
        with tempfile.TemporaryDirectory(prefix="edgeforge-commit-") as scratch:
            for entry in sorted(build_dir.iterdir()):
                name = f"{entry.name}.zip" if entry.is_dir() else entry.name
                source = entry
                if entry.is_dir():
                    source = Path(scratch) / name
                    zip_dir(entry, source)
                infos.append(ArtifactInfo(name, source.stat().st_size, self._put(source, key, name), entry.is_dir()))
                if entry.is_dir():
                    source.unlink()
        extra = {name: {"sha256": self._put(path, key, "served", name)} for name, path in (served or {}).items()}
        self._write_whole(self._at(key, SERVED), json.dumps(extra).encode())
        self._write_whole(self._at(key, INDEX), json.dumps([asdict(i) for i in infos], indent=1).encode())
        return infos

    def _put(self, source: Path, *parts: str) -> str:
        """Copy ``source`` to ``<root>/<parts>``; its sha256 (of the bytes written)."""
        digest = hashlib.sha256()
        target = self._at(*parts)
        self.fs.makedirs(target.rpartition("/")[0], exist_ok=True)
        with open(source, "rb") as src, self.fs.open(target, "wb") as dst:
            for block in iter(lambda: src.read(COPY_BLOCK), b""):
                digest.update(block)
                dst.write(block)
            if self.local:
                dst.flush()
                os.fsync(dst.fileno())
        return digest.hexdigest()

    def _write_whole(self, target: str, data: bytes) -> None:
        """Write ``target`` in one step: a synced temporary file renamed over it locally, one PUT elsewhere."""
        if not self.local:
            self.fs.pipe_file(target, data)
            return
        folder = Path(target).parent
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{Path(target).name}.{uuid.uuid4().hex}"
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def discard(self, key: str) -> None:
        """Remove whatever is stored under ``key`` (a commit that lost its job to another attempt)."""
        if self.fs.exists(self._at(key)):
            self.fs.rm(self._at(key), recursive=True)

    def list(self, key: str) -> builtins.list[ArtifactInfo]:
        try:
            return [ArtifactInfo(**i) for i in json.loads(self.fs.cat_file(self._at(key, INDEX)))]
        except FileNotFoundError:
            return []

    def info(self, key: str, name: str) -> ArtifactInfo:
        """The recorded info of one artifact; NotFoundError lists the artifacts that exist."""
        infos = {i.name: i for i in self.list(key)}
        if name not in infos:
            known = ", ".join(infos) or "(none)"
            raise NotFoundError(f"job {key.split('/')[0]} has no artifact {name!r}; its artifacts: {known}")
        return infos[name]

    def path(self, key: str, name: str, cache: Path) -> tuple[Path, ArtifactInfo]:
        """A local file holding the artifact (the stored file itself on a local store, else a copy in ``cache``)
        and its recorded info; NotFoundError lists the artifacts that exist."""
        info = self.info(key, name)
        if self.local:
            return Path(self._at(key, name)), info
        copy = cache / key / name
        if not copy.is_file() or sha256_file(copy) != info.sha256:
            copy.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(self._at(key, name), str(copy))
        return copy, info

    def read_chunks(self, key: str, name: str, offset: int, chunk: int) -> Iterator[tuple[ArtifactInfo, int, bytes]]:
        """Yield (info, offset, bytes) from ``offset``; the whole file is re-hashed and a mismatch raises."""
        info = self.info(key, name)
        digest = hashlib.sha256()
        position = 0
        if info.size == 0:
            yield info, 0, b""
        with self.fs.open(self._at(key, name), "rb") as f:
            for block in iter(lambda: f.read(chunk), b""):
                digest.update(block)
                end = position + len(block)
                if end > offset:
                    yield info, max(position, offset), block[max(0, offset - position) :]
                position = end
        if digest.hexdigest() != info.sha256:
            raise ChecksumError(
                f"artifact {name} of job {key.split('/')[0]} no longer matches its recorded sha256; "
                "the stored file is corrupt (rebuild the job)"
            )

    def fetch_served(self, key: str, dest: Path) -> builtins.list[str]:
        """Copy a commit's served files into ``dest`` (checked against their sha256); their names."""
        try:
            served = json.loads(self.fs.cat_file(self._at(key, SERVED)))
        except FileNotFoundError:
            return []
        dest.mkdir(parents=True, exist_ok=True)
        for name, info in served.items():
            self.fs.get_file(self._at(key, "served", name), str(dest / name))
            if sha256_file(dest / name) != info["sha256"]:
                raise ChecksumError(f"served file {name} of job {key.split('/')[0]} does not match its sha256")
        return list(served)

    # ---- a queued job's uploads, shared with the worker that takes it --------------------------------------
    def put_upload(self, job_id: str, folder: Path) -> None:
        """Copy the uploaded files of ``job_id`` (``folder``'s plain files) to the store, index last."""
        files = {p.name: self._put(p, UPLOADS, job_id, p.name) for p in sorted(folder.iterdir()) if p.is_file()}
        self._write_whole(self._at(UPLOADS, job_id, INDEX), json.dumps(files).encode())

    def fetch_upload(self, job_id: str, dest: Path) -> None:
        """Copy the uploads of ``job_id`` into ``dest`` (created), each checked against its sha256."""
        try:
            files = json.loads(self.fs.cat_file(self._at(UPLOADS, job_id, INDEX)))
        except FileNotFoundError:
            raise NotFoundError(f"the uploads of job {job_id} are not in the artifact store") from None
        dest.mkdir(parents=True)
        for name, sha in files.items():
            if "/" in name or name.startswith("."):
                raise ChecksumError(f"upload {name!r} of job {job_id} is not a plain file name")
            self.fs.get_file(self._at(UPLOADS, job_id, name), str(dest / name))
            if sha256_file(dest / name) != sha:
                raise ChecksumError(f"upload {name} of job {job_id} does not match its sha256")

    def has_upload(self, job_id: str) -> bool:
        return self.fs.exists(self._at(UPLOADS, job_id, INDEX))

    def drop_upload(self, job_id: str) -> None:
        if self.fs.exists(self._at(UPLOADS, job_id)):
            self.fs.rm(self._at(UPLOADS, job_id), recursive=True)


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
