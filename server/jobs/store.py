"""The persistent job store (SQLite): jobs, their progress events, and wake-ups for watchers."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from compressor.progress import ProgressEvent
from server.errors import NotFoundError, StoreUnavailableError

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)
MAX_LIST = 1000

_SCHEMA = """
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
    cloud_model: str = ""
    failure: str = ""  # why a FAILED job failed: a FailureKind name (GATE_FAILED, WORKER_CRASHED...)
    last_event: ProgressEvent | None = field(default=None)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL


class _Guarded:
    """A SQLite connection whose errors (disk full, I/O) surface as :class:`StoreUnavailableError`."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, query: str, args=()):
        try:
            return self._db.execute(query, args)
        except sqlite3.Error as exc:
            raise StoreUnavailableError(
                f"the job store cannot record this right now ({exc}); nothing was changed, try again later"
            ) from None

    def executescript(self, script: str):
        return self._db.executescript(script)

    def close(self) -> None:
        self._db.close()


class JobStore:
    """Thread-safe access to ``jobs.sqlite``; ``wait_for_change`` wakes watchers on any update."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db = _Guarded(self.connection)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "failure" not in columns:  # a store written before jobs recorded why they failed
            self._db.execute("ALTER TABLE jobs ADD COLUMN failure TEXT NOT NULL DEFAULT ''")
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)

    def create(self, tenant: str, spec: dict) -> JobRecord:
        stamp = now()
        job = JobRecord(uuid.uuid4().hex[:16], tenant, QUEUED, spec, stamp, stamp)
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, tenant, state, spec, created_at, updated_at) VALUES (?,?,?,?,?,?)",
                (job.id, tenant, QUEUED, json.dumps(spec), stamp, stamp),
            )
        return job

    def get(self, job_id: str, tenant: str | None = None) -> JobRecord:
        """The job ``job_id``; NotFoundError when absent or owned by another tenant (the two look the same)."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or (tenant is not None and row[1] != tenant):
                raise NotFoundError(f"no job {job_id!r} for this tenant; list yours with ListJobs")
            job = self._record(row)
            last = self._db.execute(
                "SELECT stage, done, total, message FROM events WHERE job_id = ? ORDER BY seq DESC LIMIT 1", (job_id,)
            ).fetchone()
        job.last_event = ProgressEvent(*last) if last else None
        return job

    def list(self, tenant: str, state: str | None = None, limit: int = 100) -> list[JobRecord]:
        limit = min(max(int(limit), 0), MAX_LIST) or 100  # 0 or less: the default, never "everything"
        query, args = "SELECT * FROM jobs WHERE tenant = ?", [tenant]
        if state:
            query, args = query + " AND state = ?", [*args, state]
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created_at DESC LIMIT ?", (*args, limit)).fetchall()
        return [self._record(r) for r in rows]

    def active(self, tenant: str) -> int:
        """How many of ``tenant``'s jobs are queued or running."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE tenant = ? AND state IN (?, ?)", (tenant, QUEUED, RUNNING)
            ).fetchone()
        return int(row[0])

    def in_state(self, state: str) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE state = ? ORDER BY created_at", (state,)).fetchall()
        return [self._record(r) for r in rows]

    def update(self, job_id: str, *, only_from: tuple[str, ...] | None = None, **fields) -> bool:
        """Set columns of one job (only while its state is in ``only_from``, when given); True if it changed."""
        fields["updated_at"] = now()
        sets = ", ".join(f"{k} = ?" for k in fields)
        query, args = f"UPDATE jobs SET {sets} WHERE id = ?", [*fields.values(), job_id]
        if only_from:
            query += f" AND state IN ({','.join('?' * len(only_from))})"
            args += list(only_from)
        with self._changed:
            changed = self._db.execute(query, args).rowcount > 0
            self._changed.notify_all()
        return changed

    def add_event(self, job_id: str, event: ProgressEvent) -> None:
        with self._changed:
            self._db.execute(
                "INSERT INTO events SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ? FROM events WHERE job_id = ?",
                (job_id, event.stage, event.done, event.total, event.message, job_id),
            )
            self._changed.notify_all()

    def events(self, job_id: str, after_seq: int) -> list[tuple[int, ProgressEvent]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, stage, done, total, message FROM events WHERE job_id = ? AND seq > ? ORDER BY seq",
                (job_id, after_seq),
            ).fetchall()
        return [(r[0], ProgressEvent(*r[1:])) for r in rows]

    def wait_for_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _record(row) -> JobRecord:
        return JobRecord(row[0], row[1], row[2], json.loads(row[3]), *row[4:])
