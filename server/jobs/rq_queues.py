"""The Redis side of ``--executor rq`` shared by the server and ``sdkgen worker``: connection, queue names and
the (JSON, never pickle) serializer.

Jobs go to one of :data:`LANES` queues chosen by tenant; workers take from every lane in turn, so one tenant's
backlog queues behind its own lane while other tenants' jobs keep being taken.
"""

from __future__ import annotations

import zlib

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from compressor.errors import InvalidInputError
from server.errors import QueueUnavailableError
from server.jobs.store import redact

LANES = 8
PREFIX = "edgeforge-jobs"
SERIALIZER = JSONSerializer  # job specs, arguments and results are JSON; pickle is never configured
TASK = "server.jobs.rq_task.run_job"
ON_FAILURE = "server.jobs.rq_task.on_failure"
ALLOWED = (TASK, ON_FAILURE)  # the only functions a worker imports and calls by a name read from Redis


class NotOurJobError(RuntimeError):
    """A job in the queue names a function other than EdgeForge's task (someone else wrote to this Redis)."""


def _allowed(name: str | None) -> None:
    if name and name not in ALLOWED:
        raise NotOurJobError(f"refusing to run {name[:120]!r} from the queue: only {', '.join(ALLOWED)} are run")


class EdgeForgeJob(Job):
    """RQ's Job, which would import and call any ``module.function`` named in Redis, held to :data:`ALLOWED`:
    the task and the callbacks are checked before they are resolved."""

    @property
    def func(self):
        _allowed(self.func_name)
        return super().func

    @property
    def success_callback(self):
        _allowed(self._success_callback_name)
        return super().success_callback

    @property
    def failure_callback(self):
        _allowed(self._failure_callback_name)
        return super().failure_callback

    @property
    def stopped_callback(self):
        _allowed(self._stopped_callback_name)
        return super().stopped_callback


def connect(url: str) -> Redis:
    """A checked connection to the queue at ``url``; QueueUnavailableError when it does not answer."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise InvalidInputError(f"queue URL {redact(url)!r} is not a Redis URL; use redis://HOST:6379/0")
    connection = Redis.from_url(url, socket_connect_timeout=10, health_check_interval=30)
    try:
        connection.ping()
    except RedisError as exc:
        raise QueueUnavailableError(f"the job queue at {redact(url)} does not answer ({exc})") from None
    return connection


def lane(tenant: str) -> str:
    """The queue of ``tenant``'s jobs."""
    return f"{PREFIX}-{zlib.crc32(tenant.encode()) % LANES}"


def queues(connection: Redis) -> list[Queue]:
    """Every lane, for a worker (it takes from each in turn)."""
    return [
        Queue(f"{PREFIX}-{i}", connection=connection, serializer=SERIALIZER, job_class=EdgeForgeJob)
        for i in range(LANES)
    ]
