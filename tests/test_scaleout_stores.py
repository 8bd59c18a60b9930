"""The shared state of a scaled-out server, on the real thing: the job store contract on SQLite and on a
throwaway PostgreSQL, the artifact store on fsspec file systems, and clear errors for bad URLs and settings."""

from __future__ import annotations

import hashlib
import json

import pytest
from services import have_postgres, have_redis, postgres_server
from support import require

from compressor.errors import InvalidInputError
from compressor.progress import ProgressEvent
from server.errors import ChecksumError, NotFoundError, QueueUnavailableError, StoreUnavailableError
from server.jobs.artifacts import ArtifactStore
from server.jobs.store import CANCELLED, QUEUED, RUNNING, SUCCEEDED, JobStore, redact
from server.jobs.stores import open_store


@pytest.fixture(scope="module")
def postgres_url():
    require(have_postgres(), "PostgreSQL's initdb/pg_ctl (Debian: apt-get install postgresql)")
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        store = JobStore(tmp_path / "jobs.sqlite")
    else:
        store = open_store(request.getfixturevalue("postgres_url"), tmp_path / "unused.sqlite")
    yield store
    store.close()


def test_claims_are_fenced_by_attempt(store):
    job = store.create("t", {"spec": 1})
    assert store.claim(job.id, "w1") == 1
    assert store.claim(job.id, "w2") == 2  # w1 was lost: w2 takes the job over
    assert not store.update(job.id, only_from=(RUNNING,), fence=1, state=SUCCEEDED)  # w1's late write is refused
    assert store.update(job.id, only_from=(RUNNING,), fence=2, state=SUCCEEDED, summary="ok")
    got = store.get(job.id, "t")
    assert (got.state, got.attempt, got.worker, got.summary, got.artifacts_key) == (
        SUCCEEDED,
        2,
        "w2",
        "ok",
        f"{job.id}/a2",
    )
    assert store.claim(job.id, "w3") is None  # ended: nobody takes it again
    assert [j.id for j in store.succeeded_since(got.updated_at)] == [job.id]


def test_cancelled_jobs_are_never_claimed_and_tenants_stay_apart(store):
    job = store.create("alice", {})
    assert store.update(job.id, only_from=(QUEUED,), state=CANCELLED)
    assert store.claim(job.id, "w1") is None
    with pytest.raises(NotFoundError, match="list yours with ListJobs"):
        store.get(job.id, "bob")
    assert store.active("alice") == 0 and [j.id for j in store.list("alice")] == [job.id] and store.list("bob") == []


def test_events_are_numbered_in_order(store):
    job = store.create("t", {})
    for i in range(3):
        store.add_event(job.id, ProgressEvent("validate", i, 3, f"step {i}"))
    assert [(s, e.done) for s, e in store.events(job.id, 1)] == [(2, 1), (3, 2)]
    assert store.get(job.id).last_event == ProgressEvent("validate", 2, 3, "step 2")


def test_an_old_sqlite_store_gains_the_new_columns(tmp_path):
    import sqlite3

    path = tmp_path / "jobs.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, state TEXT NOT NULL, spec TEXT NOT NULL, "
        "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, error TEXT NOT NULL DEFAULT '', summary TEXT NOT NULL "
        "DEFAULT '', model_name TEXT NOT NULL DEFAULT '', model_version TEXT NOT NULL DEFAULT '', cloud_model TEXT "
        "NOT NULL DEFAULT '')"
    )
    old.execute("INSERT INTO jobs (id, tenant, state, spec, created_at, updated_at) VALUES ('j', 't', 'SUCCEEDED', "
                "'{}', 'a', 'b')")  # fmt: skip
    old.commit()
    old.close()
    store = JobStore(path)
    job = store.get("j")
    assert (job.attempt, job.worker, job.failure, job.artifacts_key) == (0, "", "", "j")
    store.close()


def test_bad_store_urls_are_refused_clearly(tmp_path):
    with pytest.raises(InvalidInputError, match=r"scheme 'mysql'; use sqlite:///PATH or postgresql://"):
        open_store("mysql://root:hunter2@db/x", tmp_path / "x.sqlite")
    with pytest.raises(InvalidInputError, match=r"root:\*\*\*@db"):
        open_store("mysql://root:hunter2@db/x", tmp_path / "x.sqlite")
    assert redact("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"
    with pytest.raises(StoreUnavailableError, match=r"cannot connect to postgresql://u:\*\*\*@127\.0\.0\.1:1/d"):
        open_store("postgresql://u:pw@127.0.0.1:1/d?connect_timeout=2", tmp_path / "x.sqlite")


def _build(tmp_path):
    out = tmp_path / "out"
    (out / "python" / "pkg").mkdir(parents=True)
    (out / "python" / "pkg" / "x.py").write_text("print('x')\n")
    (out / "report.json").write_text(json.dumps({"ok": True}))
    (out / "model.onnx").write_bytes(b"\x08\x01" * 100)
    return out


@pytest.mark.parametrize("scheme", ["folder", "file", "memory"])
def test_artifact_store_commits_lists_and_verifies(tmp_path, scheme):
    location = {
        "folder": str(tmp_path / "a"),
        "file": f"file://{tmp_path / 'a'}",
        "memory": f"memory://ef-{id(tmp_path)}",
    }
    store = ArtifactStore(location[scheme])
    out = _build(tmp_path)
    infos = store.commit("job1/a1", out, served={"model.onnx": out / "model.onnx"})
    assert [(i.name, i.archive) for i in infos] == [("model.onnx", False), ("python.zip", True), ("report.json", False)]
    assert store.list("job1/a1") == infos and store.list("job1/a2") == []
    data = b"".join(chunk for _, _, chunk in store.read_chunks("job1/a1", "report.json", 0, 4))
    assert data == (out / "report.json").read_bytes()
    assert infos[2].sha256 == hashlib.sha256(data).hexdigest()
    assert store.fetch_served("job1/a1", tmp_path / "served") == ["model.onnx"]
    assert (tmp_path / "served" / "model.onnx").read_bytes() == (out / "model.onnx").read_bytes()
    with pytest.raises(NotFoundError, match="has no artifact 'x.bin'; its artifacts: model.onnx, python.zip"):
        store.info("job1/a1", "x.bin")
    store.fs.pipe_file(f"{store.root}/job1/a1/report.json", b'{"ok": false}')  # the stored bytes rot
    with pytest.raises(ChecksumError, match="no longer matches its recorded sha256"):
        list(store.read_chunks("job1/a1", "report.json", 0, 1 << 20))
    store.discard("job1/a1")
    assert store.list("job1/a1") == []


def test_a_commit_without_its_index_is_invisible(tmp_path):
    """Files are written first and index.json last: a crash in between leaves nothing to list or download."""
    store = ArtifactStore(tmp_path / "a")
    store.fs.makedirs(f"{store.root}/job/a1", exist_ok=True)
    store.fs.pipe_file(f"{store.root}/job/a1/report.json", b"{}")
    assert store.list("job/a1") == []
    with pytest.raises(NotFoundError):
        store.info("job/a1", "report.json")


def test_uploads_travel_through_the_artifact_store_checked(tmp_path):
    store = ArtifactStore(f"file://{tmp_path / 'a'}")
    uploads = tmp_path / "up"
    uploads.mkdir()
    (uploads / "model-m.pt2").write_bytes(b"model")
    (uploads / "data-d.npz").write_bytes(b"data")
    store.put_upload("j1", uploads)
    assert store.has_upload("j1")
    store.fetch_upload("j1", tmp_path / "got")
    assert sorted(p.name for p in (tmp_path / "got").iterdir()) == ["data-d.npz", "model-m.pt2"]
    (tmp_path / "a" / ".uploads" / "j1" / "model-m.pt2").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="upload model-m.pt2 of job j1 does not match its sha256"):
        store.fetch_upload("j1", tmp_path / "got2")
    store.drop_upload("j1")
    assert not store.has_upload("j1")
    with pytest.raises(NotFoundError, match="the uploads of job j1 are not in the artifact store"):
        store.fetch_upload("j1", tmp_path / "got3")


def test_unknown_fsspec_protocol_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="is not a usable fsspec URL"):
        ArtifactStore("nosuchproto://bucket/x")


def test_queue_settings_are_checked():
    from server.config import ServerConfig
    from server.jobs import rq_queues

    with pytest.raises(ValueError, match=r"executor 'rq' needs queue_url"):
        ServerConfig(executor="rq")
    with pytest.raises(InvalidInputError, match="is not a Redis URL"):
        rq_queues.connect("http://127.0.0.1:6379")
    require(have_redis(), "redis-server")
    with pytest.raises(QueueUnavailableError, match=r"the job queue at redis://127\.0\.0\.1:1/0 does not answer"):
        rq_queues.connect("redis://127.0.0.1:1/0")
    assert rq_queues.lane("alice") == rq_queues.lane("alice") and rq_queues.lane("alice").startswith("edgeforge-jobs-")


def test_one_worker_per_work_folder(tmp_path):
    import argparse
    import fcntl

    from sdkgen import cmd_worker
    from server.worker_main import LOCK, run

    parser = argparse.ArgumentParser()
    cmd_worker.add_arguments(parser)
    args = ["--queue", "redis://127.0.0.1:1/0", "--store", f"sqlite:///{tmp_path}/j.sqlite", "--artifacts",
            str(tmp_path / "a"), "--work-dir", str(tmp_path / "w"), "--name", "w1"]  # fmt: skip
    config = cmd_worker.config_from(parser.parse_args(args))
    (tmp_path / "w").mkdir()
    with open(tmp_path / "w" / LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(InvalidInputError, match="another worker uses .*; give each worker its own --work-dir"):
            run(config)
    with pytest.raises(InvalidInputError, match="worker settings are invalid"):
        cmd_worker.config_from(parser.parse_args([*args[:-1], "bad name!"]))


def test_serve_flags_choose_the_executor_and_stores(tmp_path):
    import argparse

    from sdkgen import cmd_serve

    parser = argparse.ArgumentParser()
    cmd_serve.add_arguments(parser)
    base = ["--data-dir", str(tmp_path)]
    assert cmd_serve.config_from(parser.parse_args(base)).executor == "local"
    flags = ["--executor", "rq", "--queue", "redis://q:6379/0", "--store", "postgresql://u@db/ef", "--artifacts",
             "s3://bucket/ef", "--job-retries", "3"]  # fmt: skip
    config = cmd_serve.config_from(parser.parse_args([*base, *flags]))
    assert (config.executor, config.queue_url, config.store_url, config.artifacts_url, config.job_retries) == (
        "rq",
        "redis://q:6379/0",
        "postgresql://u@db/ef",
        "s3://bucket/ef",
        3,
    )
    with pytest.raises(InvalidInputError, match=r"executor 'rq' needs queue_url \(--queue redis://HOST:6379/0\)"):
        cmd_serve.config_from(parser.parse_args([*base, "--executor", "rq"]))
