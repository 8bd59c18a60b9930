"""Admission control: what one client may hold of the server, checked before the work starts.

- Long-lived streams (SubmitJob uploads, WatchJob, DownloadArtifact) each hold an RPC thread, so they are
  capped per tenant and in total, below the thread pool: unary calls (ModelInfer, ListJobs) always find a
  thread.  The cap is an interceptor (:class:`StreamAdmission`).
- An upload that sends nothing for ``upload_idle_s`` is cancelled by :class:`IdleWatchdog`, freeing its thread.
- ModelInfer requests are held to per-model row and element limits and, together, to a byte budget
  (:class:`ByteBudget`): over it a call gets RESOURCE_EXHAUSTED at once instead of queueing in memory.

Every refusal is a :class:`BusyError` (RESOURCE_EXHAUSTED) whose message names the limit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import grpc

from server.auth import tenant
from server.errors import BusyError
from server.interceptors import wrap_handler

log = logging.getLogger("edgeforge.server")
STREAMING_METHODS = frozenset(
    {
        "/edgeforge.v1.CompressionService/SubmitJob",
        "/edgeforge.v1.CompressionService/WatchJob",
        "/edgeforge.v1.CompressionService/DownloadArtifact",
    }
)


class StreamSlots:
    """Counts open streams per tenant and in total; ``acquire`` raises BusyError past either cap."""

    def __init__(self, total: int, per_tenant: int) -> None:
        self.total, self.per_tenant = total, per_tenant
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def acquire(self, who: str) -> None:
        with self._lock:
            if self._open[who] >= self.per_tenant:
                raise BusyError(
                    f"tenant {who!r} already has {self._open[who]} streams open (uploads, watches, downloads); "
                    f"the limit is {self.per_tenant} per tenant. Let one finish, then try again"
                )
            if sum(self._open.values()) >= self.total:
                raise BusyError(f"the server has {self.total} streams open, its limit; try again in a moment")
            self._open[who] += 1

    def release(self, who: str) -> None:
        with self._lock:
            self._open[who] -= 1
            if self._open[who] <= 0:
                del self._open[who]

    def open(self, who: str | None = None) -> int:
        with self._lock:
            return self._open[who] if who is not None else sum(self._open.values())


class StreamAdmission(grpc.ServerInterceptor):
    """Holds a stream slot for the life of each long-lived RPC (placed after auth: it knows the tenant)."""

    def __init__(self, slots: StreamSlots) -> None:
        self.slots = slots

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler_call_details.method not in STREAMING_METHODS:
            return handler
        return wrap_handler(handler, self._wrap)

    def _wrap(self, behavior, streams_response):
        slots = self.slots
        if streams_response:

            def stream(request, context):
                who = tenant()
                slots.acquire(who)
                try:
                    yield from behavior(request, context)
                finally:
                    slots.release(who)

            return stream

        def unary(request, context):
            who = tenant()
            slots.acquire(who)
            try:
                return behavior(request, context)
            finally:
                slots.release(who)

        return unary


class IdleWatchdog:
    """Cancels RPCs whose request stream has been silent for ``idle_s`` (one thread for all of them)."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._watched: dict[int, list] = {}  # id -> [context, last activity, cancelled]
        self._lock = threading.Lock()
        self.cancelled = 0
        threading.Thread(target=self._loop, name="upload-idle-watchdog", daemon=True).start()

    def watch(self, requests, context):
        """Yield from ``requests``, noting each message; the RPC is cancelled after ``idle_s`` of silence."""
        key = id(context)
        entry = [context, time.monotonic(), False]
        with self._lock:
            self._watched[key] = entry
        try:
            for message in requests:
                entry[1] = time.monotonic()
                yield message
        except grpc.RpcError:
            if entry[2]:
                raise BusyError(f"the upload sent nothing for {self.idle_s:g} s and was cancelled") from None
            raise
        finally:
            with self._lock:
                self._watched.pop(key, None)

    def _loop(self) -> None:
        while True:
            time.sleep(min(1.0, self.idle_s / 4))
            now = time.monotonic()
            with self._lock:
                stale = [e for e in self._watched.values() if now - e[1] > self.idle_s and not e[2]]
                for entry in stale:
                    entry[2] = True
            for entry in stale:
                log.info("cancelling an upload idle for more than %g s", self.idle_s)
                self.cancelled += 1
                entry[0].cancel()


class ByteBudget:
    """Bytes of requests held at once; ``reserve`` raises BusyError rather than wait when they would not fit."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self._lock = threading.Lock()

    def reserve(self, size: int) -> None:
        with self._lock:
            if self.used + size > self.limit:
                raise BusyError(
                    f"the server holds {self.used} bytes of inference requests and this one adds {size}; its limit "
                    f"is {self.limit}. Retry shortly, or send fewer rows per request"
                )
            self.used += size

    def release(self, size: int) -> None:
        with self._lock:
            self.used -= size
