"""A job queue that is fair between tenants: the next job comes from the tenant served longest ago.

Within one tenant jobs run in submission order; across tenants the queue takes turns, so a tenant that
queues hundreds of jobs delays every other tenant by at most one job per runner thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

STOP = object()


class FairQueue:
    """``put(tenant, job_id)``; ``get()`` blocks for the next job (round-robin over tenants) or :data:`STOP`."""

    def __init__(self) -> None:
        self._queues: OrderedDict[str, deque] = OrderedDict()  # tenants with waiting jobs, next one first
        self._stops = 0
        self._ready = threading.Condition()

    def put(self, tenant: str, job_id: str) -> None:
        with self._ready:
            self._queues.setdefault(tenant, deque()).append(job_id)
            self._ready.notify()

    def stop(self, count: int = 1) -> None:
        """Make the next ``count`` calls to ``get`` return :data:`STOP` (one per runner thread)."""
        with self._ready:
            self._stops += count
            self._ready.notify_all()

    def get(self, timeout: float | None = None):
        """The next job id, :data:`STOP`, or None when ``timeout`` seconds passed with nothing to run."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._queues or self._stops, timeout):
                return None
            if self._stops:
                self._stops -= 1
                return STOP
            tenant, jobs = self._queues.popitem(last=False)
            job_id = jobs.popleft()
            if jobs:
                self._queues[tenant] = jobs  # back of the line
            return job_id

    def waiting(self, tenant: str) -> int:
        with self._ready:
            return len(self._queues.get(tenant, ()))

    def __len__(self) -> int:
        with self._ready:
            return sum(len(q) for q in self._queues.values())
