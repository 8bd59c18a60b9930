"""Receive a job's files from a SubmitJob stream: sizes bounded, every file checked against its sha256."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressor.errors import InvalidInputError
from server.errors import ChecksumError, IncompleteUploadError, TooLargeError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Header:
    role: str  # "model" or "data"
    filename: str
    size: int
    sha256: str

    def check(self) -> None:
        if not _SAFE_NAME.match(self.filename):
            raise InvalidInputError(
                f"upload file name {self.filename!r} is not allowed; send a plain name such as "
                "model.pt2 (letters, digits, '.', '_', '-')"
            )
        if not _SHA256.match(self.sha256):
            raise InvalidInputError(
                f"upload {self.filename} declares sha256 {self.sha256!r}; send 64 lowercase hex digits"
            )


class _File:
    def __init__(self, header: Header, directory: Path) -> None:
        header.check()
        self.header, self.received, self.digest = header, 0, hashlib.sha256()
        self.path = directory / f"{header.role}-{header.filename}"
        self._out = open(self.path, "wb")  # noqa: SIM115 - closed by finish(), spans many chunks

    def write(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.header.size:
            raise InvalidInputError(
                f"upload {self.header.filename} sends more than the {self.header.size} bytes its header announced"
            )
        self.digest.update(chunk)
        self._out.write(chunk)

    def finish(self) -> Path:
        self._out.close()
        if self.received != self.header.size:
            raise IncompleteUploadError(
                f"upload {self.header.filename} ended after {self.received} of "
                f"{self.header.size} bytes; send the whole file again"
            )
        if self.digest.hexdigest() != self.header.sha256:
            raise ChecksumError(
                f"upload {self.header.filename} has sha256 {self.digest.hexdigest()}, but its header "
                f"declared {self.header.sha256}; the file was corrupted or changed while sending"
            )
        return self.path


def receive(parts: Iterator[tuple[str, Any]], directory: Path, max_bytes: int) -> dict[str, Path]:
    """Write uploaded files into ``directory``; ``parts`` yields ("file", Header) or ("chunk", bytes).

    Returns {role: path}; raises on a missing model, a repeated role, oversize, short or corrupt files.
    """
    files: dict[str, Path] = {}
    current: _File | None = None
    total = 0
    for kind, value in parts:
        if kind == "file":
            if current:
                files[current.header.role] = current.finish()
            if value.role in files or (current and current.header.role == value.role):
                raise InvalidInputError(
                    f"the upload sends a {value.role} file twice; send one model and at most one data file"
                )
            total += value.size
            if total > max_bytes:
                raise TooLargeError(
                    f"the upload announces {total} bytes; this server accepts at most {max_bytes} "
                    "bytes per job (model and data together)"
                )
            current = _File(value, directory)
        elif current is None:
            raise InvalidInputError("a file chunk arrived before any file header; send a FileHeader first")
        else:
            current.write(value)
    if current:
        files[current.header.role] = current.finish()
    if "model" not in files:
        raise IncompleteUploadError("the upload has no model file; send a FileHeader with role MODEL and its chunks")
    return files
