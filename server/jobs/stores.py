"""Pick the job store by URL: ``open_store(url, default)``."""

from __future__ import annotations

from pathlib import Path

from compressor.errors import InvalidInputError
from server.jobs.store import JobStore, Store, redact


def open_store(url: str | None, default: Path) -> Store:
    """The store named by ``url``: None (SQLite at ``default``), ``sqlite:///PATH`` or ``postgresql://...``."""
    if not url:
        return JobStore(default)
    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite":
        return JobStore(Path(url.partition("://")[2]))
    if scheme in ("postgresql", "postgres"):
        from server.jobs.store_postgres import PostgresJobStore

        return PostgresJobStore(url)
    raise InvalidInputError(
        f"job store URL {redact(url)!r} has scheme {scheme!r}; use sqlite:///PATH or "
        "postgresql://USER@HOST:PORT/DB (a libpq URL)"
    )
