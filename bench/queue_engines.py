"""Measure the candidate job-queue engines on this machine: RQ (Redis), Celery (Redis broker) and Ray.

The figures that chose RQ for ``--executor rq`` (see README, "Scaling out"). Needs the three engines in one
environment, which the project itself does not install (only RQ is a dependency):

    python -m venv /tmp/engines && /tmp/engines/bin/pip install rq redis celery ray psutil
    /tmp/engines/bin/python bench/queue_engines.py

For each engine it prints: the size of the engine and its dependencies on disk, the time from starting a worker
to its first finished task, the memory (RSS) of the engine's idle processes, the round trip of a no-op task
(median of 30), whether task arguments can be JSON only, and what happens to a task whose worker is SIGKILLed
mid-run (re-run on a second worker, and after how long). The slow task asks the kernel to kill it with its parent
(PR_SET_PDEATHSIG), as EdgeForge's job task does: without it an RQ work horse outlives its SIGKILLed worker
(it runs in its own process group) and finishes the job unsupervised.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

TASKS = textwrap.dedent(
    """
    import os, time
    def noop(x):
        return x
    def slow(marker, seconds):
        import ctypes, signal
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # die with the worker, as EdgeForge's job task does
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(seconds)
        return "ok"
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dist_size(names: list[str]) -> float:
    """MiB on disk of the named distributions and everything they require (transitively)."""
    seen: set[str] = set()
    total = 0
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        for f in dist.files or []:
            path = Path(dist.locate_file(f))
            if path.is_file():
                total += path.stat().st_size
        for req in dist.requires or []:
            if "extra ==" not in req:
                todo.append(req.split(";")[0].split("[")[0].split(" ")[0].split(">")[0].split("<")[0].split("=")[0])
    return total / (1 << 20)


def tree_rss(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            total += sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
        except psutil.NoSuchProcess:
            pass
    return total / (1 << 20)


def wait(condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("engine did not answer in time")


def bench_rq(work: Path, redis_url: str) -> dict:
    from redis import Redis
    from rq import Queue, Retry
    from rq.serializers import JSONSerializer

    conn = Redis.from_url(redis_url)
    queue = Queue("bench", connection=conn, serializer=JSONSerializer)

    def worker(name):
        return subprocess.Popen(
            [sys.executable, "-m", "rq.cli", "worker", "bench", "--url", redis_url, "-n", name, "-w",
             "bench_rq_worker.FastSpawnWorker", "-S", "rq.serializers.JSONSerializer", "--maintenance-interval", "2",
             "--job-monitoring-interval", "2", "--worker-ttl", "17"],
            cwd=work, env={**os.environ, "PYTHONPATH": str(work)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    (work / "bench_rq_worker.py").write_text(
        "from rq.worker import SpawnWorker\n"
        "class FastSpawnWorker(SpawnWorker):\n"
        "    def get_heartbeat_ttl(self, job):\n"
        "        return self.job_monitoring_interval * 2\n"
    )
    t0 = time.monotonic()
    w1 = worker("w1")
    job = queue.enqueue("tasks.noop", 1)
    wait(lambda: job.get_status(refresh=True) == "finished")
    cold = time.monotonic() - t0
    time.sleep(1)
    rss = tree_rss([w1.pid])
    trips = []
    for i in range(30):
        t = time.monotonic()
        job = queue.enqueue("tasks.noop", i)
        wait(lambda job=job: job.get_status(refresh=True) == "finished")
        trips.append(time.monotonic() - t)
    marker = work / "rq-slow.txt"
    job = queue.enqueue("tasks.slow", str(marker), 3, retry=Retry(max=1), job_timeout=60)
    wait(marker.exists)
    w1.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    w2 = worker("w2")
    wait(lambda: job.get_status(refresh=True) == "finished", 180)
    recovered = time.monotonic() - killed
    runs = len(marker.read_text().split())
    w2.terminate()
    w2.wait()
    return {"cold_s": cold, "idle_rss_mib": rss, "roundtrip_ms": statistics.median(trips) * 1000,
            "json_only": "JSONSerializer (job data and results are JSON)", "sigkill": f"re-run on w2, {runs} runs, "
            f"done {recovered:.1f} s after the kill (heartbeat TTL 4 s, maintenance every 2 s here)"}  # fmt: skip


def bench_celery(work: Path, redis_url: str) -> dict:
    (work / "bench_celery_app.py").write_text(
        TASKS.replace("def noop", "@app.task\ndef noop")
        .replace("def slow", "@app.task(acks_late=True, reject_on_worker_lost=True)\ndef slow")
        .replace(
            "import os, time",
            "import os, time\nfrom celery import Celery\n"
            f"app = Celery('b', broker={redis_url!r}, backend={redis_url!r})\n"
            "app.conf.update(task_serializer='json', result_serializer='json', accept_content=['json'],"
            " broker_transport_options={'visibility_timeout': 5}, worker_prefetch_multiplier=1)\n",
        )
    )
    sys.path.insert(0, str(work))
    import bench_celery_app as capp

    def worker(name):
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench_celery_app", "worker", "--pool", "solo", "-n", name,
             "--without-gossip", "--without-mingle", "-l", "warning"],
            cwd=work, env={**os.environ, "PYTHONPATH": str(work)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    t0 = time.monotonic()
    w1 = worker("w1@bench")
    capp.noop.delay(1).get(timeout=120)
    cold = time.monotonic() - t0
    time.sleep(1)
    rss = tree_rss([w1.pid])
    trips = []
    for i in range(30):
        t = time.monotonic()
        capp.noop.delay(i).get(timeout=30)
        trips.append(time.monotonic() - t)
    marker = work / "celery-slow.txt"
    result = capp.slow.delay(str(marker), 3)
    wait(marker.exists)
    w1.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    w2 = worker("w2@bench")
    try:
        result.get(timeout=120)
        outcome = (
            f"re-run on w2 after the visibility timeout (5 s here, 1 h by default), {time.monotonic() - killed:.1f} s"
        )
    except Exception as exc:
        outcome = f"not re-run ({type(exc).__name__})"
    runs = len(marker.read_text().split())
    w2.terminate()
    w2.wait()
    return {"cold_s": cold, "idle_rss_mib": rss, "roundtrip_ms": statistics.median(trips) * 1000,
            "json_only": "task_serializer=json, accept_content=['json']", "sigkill": f"{outcome}, {runs} runs"}  # fmt: skip


def bench_ray(work: Path) -> dict:
    import ray

    (work / "bench_ray_tasks.py").write_text(TASKS)
    sys.path.insert(0, str(work))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(work), "RAY_USAGE_STATS_ENABLED": "0"}
    t0 = time.monotonic()
    subprocess.run(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats"],
        check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        ray.init(
            address=f"127.0.0.1:{port}", runtime_env={"env_vars": {"PYTHONPATH": str(work)}}, logging_level="ERROR"
        )
        import bench_ray_tasks

        noop = ray.remote(bench_ray_tasks.noop)
        slow = ray.remote(max_retries=1)(bench_ray_tasks.slow)
        ray.get(noop.remote(1))
        cold = time.monotonic() - t0
        time.sleep(1)
        pids = [p.pid for p in psutil.process_iter(["cmdline"]) if "ray" in " ".join(p.info["cmdline"] or [])[:300]]
        rss = tree_rss([p for p in pids if p != os.getpid()])
        trips = []
        for i in range(30):
            t = time.monotonic()
            ray.get(noop.remote(i))
            trips.append(time.monotonic() - t)
        marker = work / "ray-slow.txt"
        ref = slow.remote(str(marker), 3)
        wait(marker.exists)
        os.kill(int(marker.read_text().split()[0]), signal.SIGKILL)
        killed = time.monotonic()
        ray.get(ref, timeout=120)
        outcome = f"re-run by a new worker process, {time.monotonic() - killed:.1f} s"
        runs = len(marker.read_text().split())
        ray.shutdown()
    finally:
        subprocess.run(
            [str(Path(sys.executable).with_name("ray")), "stop", "--force"],
            check=False,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return {"cold_s": cold, "idle_rss_mib": rss, "roundtrip_ms": statistics.median(trips) * 1000,
            "json_only": "no: task arguments and results always go through (cloud)pickle",
            "sigkill": f"{outcome}, {runs} runs"}  # fmt: skip


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="engines-"))
    (work / "tasks.py").write_text(TASKS)
    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    results = {}
    try:
        wait(
            lambda: (
                subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False).stdout.strip()
                == b"PONG"
            )
        )
        redis_rss = tree_rss([redis.pid])
        results["rq"] = {**bench_rq(work, url), "disk_mib": dist_size(["rq"]), "service_rss_mib": redis_rss}
        results["celery"] = {**bench_celery(work, url), "disk_mib": dist_size(["celery"]), "service_rss_mib": redis_rss}
        results["ray"] = {**bench_ray(work), "disk_mib": dist_size(["ray"]), "service_rss_mib": 0.0}
    finally:
        redis.terminate()
        redis.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'engine':8} {'disk MiB':>9} {'cold s':>7} {'idle RSS MiB':>13} {'round trip ms':>14}  JSON / SIGKILL")
    for name, r in results.items():
        rss = r["idle_rss_mib"] + r["service_rss_mib"]
        print(
            f"{name:8} {r['disk_mib']:9.1f} {r['cold_s']:7.2f} {rss:13.0f} {r['roundtrip_ms']:14.1f}  {r['json_only']}"
        )
        print(f"{'':56}SIGKILL mid-task: {r['sigkill']}")
    print(json.dumps(results, indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
