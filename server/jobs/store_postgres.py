"""The job store in PostgreSQL (psycopg 3), for servers and workers on several machines sharing one database.

Same tables and SQL as the SQLite store (``?`` placeholders become ``%s``); one autocommit connection per
process, re-opened once when the server dropped it. Errors surface as :class:`StoreUnavailableError`.
"""

from __future__ import annotations

import builtins

import psycopg
from psycopg import errors as pg_errors

from server.jobs.store import ADDED_COLUMNS, SCHEMA, Store, _unavailable, redact

CONNECT_TIMEOUT_S = 10
SCHEMA_LOCK = 0x6564676566  # pg_advisory_lock key of the schema set-up ("edgef")


class PostgresJobStore(Store):
    """Jobs and events in the database at ``url`` (``postgresql://user[:password]@host:port/dbname``)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._connection: psycopg.Connection | None = None
        with self._lock:  # one process at a time sets up the tables (servers and workers may start together)
            self._rows("SELECT pg_advisory_lock(?)", (SCHEMA_LOCK,))
            try:
                for statement in filter(str.strip, SCHEMA.split(";")):
                    self._count(statement)
                for name, kind in ADDED_COLUMNS.items():
                    self._count(f"ALTER TABLE jobs ADD COLUMN IF NOT EXISTS {name} {kind}")
            finally:
                self._rows("SELECT pg_advisory_unlock(?)", (SCHEMA_LOCK,))

    def _connect(self) -> psycopg.Connection:
        if self._connection is None or self._connection.closed:
            try:
                self._connection = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
            except psycopg.Error as exc:
                raise _unavailable(RuntimeError(f"cannot connect to {redact(self.url)}: {exc}")) from None
        return self._connection

    def _run(self, query: str, args, fetch: bool):
        query = query.replace("?", "%s")
        with self._lock:
            for retry in (True, False):
                try:
                    cursor = self._connect().execute(query, tuple(args))
                    return cursor.fetchall() if fetch and cursor.description else cursor.rowcount
                except pg_errors.UniqueViolation as exc:
                    if retry and query.startswith("INSERT INTO events"):
                        continue  # two attempts numbered an event at once: number it again
                    raise _unavailable(exc) from None
                except psycopg.OperationalError as exc:
                    if self._connection is not None and not self._connection.closed:
                        raise _unavailable(exc) from None
                    self._connection = None  # dropped (server restart, network): reconnect once
                    if not retry:
                        raise _unavailable(exc) from None
                except psycopg.Error as exc:
                    raise _unavailable(exc) from None
        raise AssertionError("unreachable")

    def _rows(self, query: str, args=()) -> builtins.list[tuple]:
        rows = self._run(query, args, fetch=True)
        return rows if isinstance(rows, list) else []

    def _count(self, query: str, args=()) -> int:
        return int(self._run(query, args, fetch=False))

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
