"""The persistent job store: jobs, their progress events, and wake-ups for watchers.

:class:`Store` is the interface (and the SQL both implementations share); :class:`JobStore` keeps it in
SQLite (the embedded default, one file), :class:`server.jobs.store_postgres.PostgresJobStore` in PostgreSQL
(several nodes). :func:`server.jobs.stores.open_store` picks one by URL.

Every job has an ``attempt`` number: a worker that takes a job (:meth:`Store.claim`) raises it, and whatever it
records afterwards is *fenced* by it (``update(..., fence=attempt)``), so a worker that lost its job to a retry
elsewhere can never overwrite the outcome of the attempt that replaced it.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from compressor.progress import ProgressEvent
from server.errors import NotFoundError, StoreUnavailableError

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)
MAX_LIST = 1000
COLUMNS = (
    "id, tenant, state, spec, created_at, updated_at, error, summary, model_name, model_version, cloud_model, "
    "failure, attempt, worker"
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, state TEXT NOT NULL, spec TEXT NOT NULL,
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL, error TEXT NOT NULL DEFAULT '',
  summary TEXT NOT NULL DEFAULT '', model_name TEXT NOT NULL DEFAULT '', model_version TEXT NOT NULL DEFAULT '',
  cloud_model TEXT NOT NULL DEFAULT '', failure TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs (tenant, created_at);
CREATE TABLE IF NOT EXISTS events (
  job_id TEXT NOT NULL, seq INTEGER NOT NULL, stage TEXT NOT NULL, done INTEGER NOT NULL, total INTEGER NOT NULL,
  message TEXT NOT NULL, PRIMARY KEY (job_id, seq));
"""
# Columns added after the first release: a store written before gets them on open.
ADDED_COLUMNS = {
    "failure": "TEXT NOT NULL DEFAULT ''",  # why a FAILED job failed
    "attempt": "INTEGER NOT NULL DEFAULT 0",  # how many workers have taken the job (the fence of its writes)
    "worker": "TEXT NOT NULL DEFAULT ''",  # the worker of the latest attempt
}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class JobRecord:
    id: str
    tenant: str
    state: str
    spec: dict
    created_at: str
    updated_at: str
    error: str = ""
    summary: str = ""
    model_name: str = ""
    model_version: str = ""
    cloud_model: str = ""  # a local path (local executor) or a name inside the job's artifacts (queue executor)
    failure: str = ""  # why a FAILED job failed: a FailureKind name (GATE_FAILED, WORKER_CRASHED...)
    attempt: int = 0  # 0: never taken by a queue worker (the local executor does not count attempts)
    worker: str = ""
    last_event: ProgressEvent | None = field(default=None)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    @property
    def artifacts_key(self) -> str:
        """Where this job's artifacts live in the artifact store: one folder per attempt that built them."""
        return f"{self.id}/a{self.attempt}" if self.attempt else self.id


class Store(ABC):
    """A job store. Implementations run the shared SQL (``?`` placeholders) through :meth:`_rows` and
    :meth:`_count`; ``wait_for_change`` wakes this process's watchers on its own writes (and otherwise times out,
    so a watcher also sees writes made by other nodes within its timeout)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)

    @abstractmethod
    def _rows(self, query: str, args=()) -> builtins.list[tuple]:
        """Run one statement; its rows. Errors surface as StoreUnavailableError."""

    @abstractmethod
    def _count(self, query: str, args=()) -> int:
        """Run one statement; the number of rows it changed."""

    @abstractmethod
    def close(self) -> None: ...

    def create(self, tenant: str, spec: dict) -> JobRecord:
        stamp = now()
        job = JobRecord(uuid.uuid4().hex[:16], tenant, QUEUED, spec, stamp, stamp)
        with self._lock:
            self._count(
                "INSERT INTO jobs (id, tenant, state, spec, created_at, updated_at) VALUES (?,?,?,?,?,?)",
                (job.id, tenant, QUEUED, json.dumps(spec), stamp, stamp),
            )
        return job

    def get(self, job_id: str, tenant: str | None = None) -> JobRecord:
        """The job ``job_id``; NotFoundError when absent or owned by another tenant (the two look the same)."""
        with self._lock:
            rows = self._rows(f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,))
            if not rows or (tenant is not None and rows[0][1] != tenant):
                raise NotFoundError(f"no job {job_id!r} for this tenant; list yours with ListJobs")
            job = self._record(rows[0])
            last = self._rows(
                "SELECT stage, done, total, message FROM events WHERE job_id = ? ORDER BY seq DESC LIMIT 1", (job_id,)
            )
        job.last_event = ProgressEvent(*last[0]) if last else None
        return job

    def list(self, tenant: str, state: str | None = None, limit: int = 100) -> builtins.list[JobRecord]:
        limit = min(max(int(limit), 0), MAX_LIST) or 100  # 0 or less: the default, never "everything"
        query, args = f"SELECT {COLUMNS} FROM jobs WHERE tenant = ?", [tenant]
        if state:
            query, args = query + " AND state = ?", [*args, state]
        with self._lock:
            rows = self._rows(query + " ORDER BY created_at DESC LIMIT ?", (*args, limit))
        return [self._record(r) for r in rows]

    def active(self, tenant: str) -> int:
        """How many of ``tenant``'s jobs are queued or running."""
        with self._lock:
            rows = self._rows(
                "SELECT COUNT(*) FROM jobs WHERE tenant = ? AND state IN (?, ?)", (tenant, QUEUED, RUNNING)
            )
        return int(rows[0][0])

    def in_state(self, state: str) -> builtins.list[JobRecord]:
        with self._lock:
            rows = self._rows(f"SELECT {COLUMNS} FROM jobs WHERE state = ? ORDER BY created_at", (state,))
        return [self._record(r) for r in rows]

    def succeeded_since(self, stamp: str) -> builtins.list[JobRecord]:
        """Jobs that reached SUCCEEDED at ``stamp`` or later (how a server learns of builds done on other nodes)."""
        with self._lock:
            rows = self._rows(
                f"SELECT {COLUMNS} FROM jobs WHERE state = ? AND updated_at >= ? ORDER BY updated_at",
                (SUCCEEDED, stamp),
            )
        return [self._record(r) for r in rows]

    def update(
        self, job_id: str, *, only_from: tuple[str, ...] | None = None, fence: int | None = None, **fields
    ) -> bool:
        """Set columns of one job (only while its state is in ``only_from``, and its attempt is ``fence``, when
        given); True if it changed."""
        fields["updated_at"] = now()
        sets = ", ".join(f"{k} = ?" for k in fields)
        query, args = f"UPDATE jobs SET {sets} WHERE id = ?", [*fields.values(), job_id]
        if only_from:
            query += f" AND state IN ({','.join('?' * len(only_from))})"
            args += list(only_from)
        if fence is not None:
            query, args = query + " AND attempt = ?", [*args, fence]
        with self._changed:
            changed = self._count(query, args) > 0
            self._changed.notify_all()
        return changed

    def claim(self, job_id: str, worker: str) -> int | None:
        """Take a queued job, or one whose previous worker was lost, for ``worker``: RUNNING with the next attempt
        number, which fences every later write of this worker. None when the job has ended (or was cancelled)."""
        with self._changed:
            rows = self._rows(
                "UPDATE jobs SET state = ?, attempt = attempt + 1, worker = ?, updated_at = ? "
                "WHERE id = ? AND state IN (?, ?) RETURNING attempt",
                (RUNNING, worker, now(), job_id, QUEUED, RUNNING),
            )
            self._changed.notify_all()
        return int(rows[0][0]) if rows else None

    def add_event(self, job_id: str, event: ProgressEvent) -> None:
        with self._changed:
            self._count(
                "INSERT INTO events SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ? FROM events WHERE job_id = ?",
                (job_id, event.stage, event.done, event.total, event.message, job_id),
            )
            self._changed.notify_all()

    def events(self, job_id: str, after_seq: int) -> builtins.list[tuple[int, ProgressEvent]]:
        with self._lock:
            rows = self._rows(
                "SELECT seq, stage, done, total, message FROM events WHERE job_id = ? AND seq > ? ORDER BY seq",
                (job_id, after_seq),
            )
        return [(r[0], ProgressEvent(*r[1:])) for r in rows]

    def wait_for_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    @staticmethod
    def _record(row) -> JobRecord:
        return JobRecord(row[0], row[1], row[2], json.loads(row[3]), *row[4:])


def _unavailable(exc: Exception) -> StoreUnavailableError:
    return StoreUnavailableError(
        f"the job store cannot record this right now ({exc}); nothing was changed, try again later"
    )


class JobStore(Store):
    """The SQLite store: thread-safe access to one ``jobs.sqlite`` (WAL, synchronous writes)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._count("PRAGMA journal_mode=WAL")
        self._count("PRAGMA synchronous=FULL")
        self.connection.executescript(SCHEMA)
        columns = {row[1] for row in self._rows("PRAGMA table_info(jobs)")}
        for name, kind in ADDED_COLUMNS.items():
            if name not in columns:
                self._count(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")

    def _cursor(self, query: str, args):
        try:
            return self.connection.execute(query, args)
        except sqlite3.Error as exc:
            raise _unavailable(exc) from None

    def _rows(self, query: str, args=()) -> builtins.list[tuple]:
        with self._lock:
            cursor = self._cursor(query, args)
            try:
                return cursor.fetchall()
            except sqlite3.Error as exc:
                raise _unavailable(exc) from None

    def _count(self, query: str, args=()) -> int:
        with self._lock:
            return self._cursor(query, args).rowcount

    def close(self) -> None:
        with self._lock:
            self.connection.close()


def redact(url: str) -> str:
    """``url`` without the password of its user part (for messages and logs)."""
    head, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    user, _, host = rest.partition("@")
    return f"{head}://{user.split(':', 1)[0]}:***@{host}" if ":" in user else url
