"""Server-side errors and the one place where EdgeForge errors become gRPC status codes."""

from __future__ import annotations

import grpc

from compressor.errors import (
    ConversionError,
    EdgeForgeError,
    GateFailedError,
    InvalidInputError,
    UnknownNameError,
)


class NotFoundError(EdgeForgeError, LookupError):
    """A job, artifact or model does not exist (or belongs to another tenant)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnauthenticatedError(EdgeForgeError, PermissionError):
    """The call carries no bearer token, or one the server does not know."""


class PermissionDeniedError(EdgeForgeError, PermissionError):
    """The token is valid but not for this kind of call (e.g. an inference token submitting a job)."""


class TooLargeError(InvalidInputError):
    """An upload or tensor exceeds the server's size limit."""


class ChecksumError(InvalidInputError):
    """Uploaded bytes do not match the sha256 the client declared."""


class IncompleteUploadError(InvalidInputError):
    """The client ended an upload before sending what it announced."""


class NotReadyError(EdgeForgeError, RuntimeError):
    """The call needs a job state it is not in (download before success, cancel after the end)."""


class BusyError(EdgeForgeError, RuntimeError):
    """An admission limit is reached (open streams, queued jobs, request rows, in-flight bytes, disk space);
    the message names the limit, and the call may succeed later or smaller."""


class StoreUnavailableError(EdgeForgeError, RuntimeError):
    """The job store cannot record anything right now (disk full, I/O error); nothing was changed."""


class QueueUnavailableError(EdgeForgeError, RuntimeError):
    """The job queue (Redis for ``--executor rq``) cannot be reached; the job was not queued."""


class SandboxUnavailableError(EdgeForgeError, RuntimeError):
    """The job sandbox cannot be set up on this machine (bubblewrap missing or refused)."""


class WorkerProtocolError(EdgeForgeError, RuntimeError):
    """A job's worker sent something the server does not accept (it runs untrusted code, so this fails the job)."""


# Most specific first: the first matching class decides the code.
_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (TooLargeError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (BusyError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (StoreUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (QueueUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (ChecksumError, grpc.StatusCode.DATA_LOSS),
    (NotReadyError, grpc.StatusCode.FAILED_PRECONDITION),
    (GateFailedError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnknownNameError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (ConversionError, grpc.StatusCode.INTERNAL),
    (EdgeForgeError, grpc.StatusCode.UNKNOWN),
)


# Why a job failed, by the error its build raised (names of the proto's FailureKind); most specific first.
_FAILURES: tuple[tuple[type[BaseException], str], ...] = (
    (GateFailedError, "GATE_FAILED"),
    (InvalidInputError, "INVALID_INPUT"),
    (UnknownNameError, "INVALID_INPUT"),
    (EdgeForgeError, "BUILD_ERROR"),
)


def failure_kind(exc: BaseException) -> str:
    """The FailureKind name for a job whose build raised ``exc`` (INTERNAL for anything unexpected)."""
    return next((kind for cls, kind in _FAILURES if isinstance(exc, cls)), "INTERNAL")


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The gRPC status code for an EdgeForge error (INTERNAL for anything unexpected)."""
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL
