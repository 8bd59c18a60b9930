"""The job sandbox for real (bubblewrap): what code inside a job can and cannot reach.

A probe runs inside the sandbox exactly as a worker does and tries what a hostile model would: read the
auth file and the job store, write outside its job, ``torch.from_file`` on host paths, open a network
connection to the server, look at the server's processes and environment.  Needs bubblewrap (CI installs
it; ``require`` turns a missing tool into a failure there).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import require

from server.config import SandboxConfig
from server.jobs.sandbox import JobFolder, Sandbox, code_root

pytestmark = pytest.mark.slow  # builds or serves real models: not part of make test-fast

PROBE = textwrap.dedent(
    """
    import json, os, resource, socket, sys
    host = json.loads(sys.argv[1])
    report = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}

    def attempt(name, action):
        try:
            action()
            report[name] = "allowed"
        except Exception as exc:
            report[name] = type(exc).__name__

    attempt("read_secret", lambda: open(host["secret"]).read())
    attempt("list_data_dir", lambda: os.listdir(host["data_dir"]))
    attempt("read_store", lambda: open(os.path.join(host["data_dir"], "jobs.sqlite"), "rb").read())
    attempt("write_code", lambda: open(os.path.join(host["code"], "pwned"), "w").write("x"))
    attempt("write_etc", lambda: open("/etc/pwned", "w").write("x"))
    attempt("write_host_tmp", lambda: open(host["canary"], "w").write("x"))
    attempt("write_job", lambda: open("/job/work/ok", "w").write("x"))
    attempt("write_tmp", lambda: open("/tmp/ok", "w").write("x"))
    attempt("write_input", lambda: open("/job/input/pwned", "w").write("x"))

    import torch
    def from_file_shared():
        t = torch.from_file(host["ts_canary"], shared=True, size=16, dtype=torch.uint8)
        t.fill_(65)
    attempt("from_file_shared", from_file_shared)
    attempt("from_file_secret", lambda: torch.from_file(host["secret"], shared=False, size=4, dtype=torch.uint8))

    def connect():
        with socket.create_connection(("127.0.0.1", host["port"]), timeout=2):
            pass
    attempt("connect_server", connect)
    report["processes"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    report["env_secret"] = os.environ.get("EDGEFORGE_TEST_SECRET")
    report["cmdlines"] = [open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")
                          for p in os.listdir("/proc") if p.isdigit()]
    report["rlimits"] = {n: resource.getrlimit(getattr(resource, "RLIMIT_" + n))[0]
                         for n in ("AS", "CPU", "FSIZE", "NPROC", "NOFILE")}
    report["no_new_privs"] = [l for l in open("/proc/self/status") if l.startswith("NoNewPrivs")]
    report["cap_eff"] = [l for l in open("/proc/self/status") if l.startswith("CapEff")]
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    require(shutil.which("bwrap") is not None, "bubblewrap (bwrap) is needed to test the job sandbox")
    root = tmp_path_factory.mktemp("sandbox")
    data_dir = root / "data"
    (data_dir / "work" / "builds" / "job1" / "input").mkdir(parents=True)
    (data_dir / "jobs.sqlite").write_bytes(b"SQLite format 3\x00 every tenant's jobs")
    secret = root / "tenants.toml"
    secret.write_text('[[tenants]]\nname = "acme"\nbuild_tokens = ["hunter2"]\n')
    secret.chmod(0o600)
    folder = JobFolder(data_dir / "work" / "builds" / "job1")
    config = SandboxConfig(address_space_mb=8192, cpu_seconds=120, file_size_mb=64, processes=2048, open_files=512)
    sandbox = Sandbox(config, hidden=(data_dir, secret))
    sandbox.prepare(folder)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    host = {
        "secret": str(secret),
        "data_dir": str(data_dir),
        "code": str(code_root()),
        "canary": str(root / "canary"),
        "ts_canary": str(root / "ts-canary"),
        "port": listener.getsockname()[1],
    }
    command = sandbox.command(folder, [sys.executable, "-c", PROBE, json.dumps(host)])
    env = {"PATH": os.environ["PATH"], "EDGEFORGE_TEST_SECRET": "hunter2"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    listener.close()
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), host, root, folder, config


def test_job_cannot_read_the_auth_file_or_the_store(probe):
    report, *_ = probe
    assert report["read_secret"] in ("FileNotFoundError", "PermissionError")
    assert report["list_data_dir"] in ("FileNotFoundError", "PermissionError")
    assert report["read_store"] in ("FileNotFoundError", "PermissionError")
    assert report["from_file_secret"] != "allowed"


def test_job_writes_only_inside_its_work_folder(probe):
    report, _host, root, folder, _ = probe
    for attempt in ("write_code", "write_etc", "write_host_tmp", "write_input", "from_file_shared"):
        assert report[attempt] != "allowed", attempt
    assert report["write_job"] == "allowed" and report["write_tmp"] == "allowed"
    assert not (root / "canary").exists() and not (root / "ts-canary").exists()
    assert not (code_root() / "pwned").exists()
    assert (folder.work / "ok").exists() and (folder.work / "tmp" / "ok").exists()


def test_job_has_no_network_and_sees_none_of_the_server(probe):
    report, *_ = probe
    assert report["connect_server"] != "allowed"
    assert report["env_secret"] is None
    assert all("hunter2" not in c and "-m\x00pytest" not in c for c in report["cmdlines"])
    assert len(report["processes"]) <= 4  # bubblewrap's init, prlimit/setpriv's exec chain, the probe


def test_job_runs_unprivileged_under_its_limits(probe):
    report, *_, config = probe
    if os.geteuid() == 0:
        assert (report["uid"], report["gid"], report["groups"]) == (65534, 65534, [])
        assert report["cap_eff"] == ["CapEff:\t0000000000000000\n"]
    assert report["no_new_privs"] == ["NoNewPrivs:\t1\n"] or os.geteuid() != 0
    assert report["rlimits"] == {
        "AS": config.address_space_mb << 20,
        "CPU": config.cpu_seconds,
        "FSIZE": config.file_size_mb << 20,
        "NPROC": config.processes,
        "NOFILE": config.open_files,
    }


def test_secrets_under_a_mounted_folder_are_masked(tmp_path):
    """An auth file kept inside the code folder (visible read-only to jobs) is covered by /dev/null, which the
    sandbox's nodev mounts do not even let it open."""
    require(shutil.which("bwrap") is not None, "bubblewrap (bwrap) is needed to test the job sandbox")
    secret = Path(__file__).resolve().parent / "support.py"  # any file under the mounted code folder
    folder = JobFolder(tmp_path / "job")
    folder.input.mkdir(parents=True)
    sandbox = Sandbox(SandboxConfig(), hidden=(secret,))
    sandbox.prepare(folder)
    command = sandbox.command(folder, ["/bin/cat", str(secret)])
    done = subprocess.run(command, capture_output=True, text=True, env={"PATH": os.environ["PATH"]}, check=False)
    assert done.returncode != 0 and done.stdout == "", done.stdout[:200]
    assert "Permission denied" in done.stderr or "No such file" in done.stderr
