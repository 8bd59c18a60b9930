"""The job sandbox: each build runs under bubblewrap, seeing nothing of the host but what it needs.

Inside, a worker sees a read-only view of the system libraries, the Python installation and EdgeForge's
code, its own job folder (``/job``: ``input/`` read-only; ``work/`` writable, holding ``out/``, ``tmp/``
(also ``/tmp``) and ``home/``) and
nothing else: not the job store, the artifact store, other jobs' folders, the ``--auth`` file or the TLS
key (those are also masked should they lie under a mounted path).  It has its own mount, pid, network
(no interfaces but loopback), IPC and UTS namespaces, runs as an unprivileged uid (65534) with no
capabilities and ``no_new_privs``, under rlimits on address space, CPU time, file size, processes and
open files.  A fresh ``/proc`` shows only the sandbox's own processes, so the server's command line and
environment are out of reach; the environment is cleared.

Run as root (a server), bubblewrap builds the namespaces with real privileges and ``setpriv`` drops to
the configured uid before Python starts; run as a normal user, an unprivileged user namespace maps the
configured uid to the caller's own.  :class:`SandboxUnavailableError` says what is missing.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from server.config import MiB, SandboxConfig
from server.errors import SandboxUnavailableError

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What Python, numpy, torch and TensorFlow read from /etc; the rest of /etc stays out.
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/alternatives",
    "/etc/ssl/certs",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/os-release",
)
INSIDE = Path("/job")  # the job folder as the worker sees it


@dataclass(frozen=True)
class JobFolder:
    """One job's folder on the host: ``input/`` (the uploads), ``work/`` (the only writable part) and the log."""

    root: Path

    @property
    def input(self) -> Path:
        return self.root / "input"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def out(self) -> Path:
        return self.work / "out"

    @property
    def log(self) -> Path:
        return self.root / "worker.log"


def code_root() -> Path:
    """The folder holding EdgeForge's packages (``compressor``, ``server``, ``sdkgen``, ``templates``)."""
    return Path(__file__).resolve().parents[2]


class Sandbox:
    """Builds the command line that runs ``argv`` inside a job folder (bubblewrap, rlimits, dropped uid)."""

    def __init__(self, config: SandboxConfig, hidden: tuple[Path, ...] = ()) -> None:
        self.config = config
        self.hidden = tuple(Path(p).resolve() for p in hidden)
        self.privileged = os.geteuid() == 0
        if config.enabled:
            self._check_tools()

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def _check_tools(self) -> None:
        tools = ["bwrap", "prlimit", *(["setpriv"] if self.privileged else [])]
        missing = [t for t in tools if shutil.which(t) is None]
        if missing:
            raise SandboxUnavailableError(
                f"the job sandbox needs {', '.join(missing)} on PATH (Debian: apt-get install bubblewrap "
                "util-linux); install it, or run untrusted-model-free setups with [sandbox] enabled = false"
            )

    def prepare(self, folder: JobFolder) -> None:
        """Create the writable folders, owned by the sandbox uid when the server runs as root."""
        for path in (folder.work, folder.work / "tmp", folder.work / "home"):
            path.mkdir(parents=True, exist_ok=True)
            if self.enabled and self.privileged:
                os.chown(path, self.config.uid, self.config.gid)
                path.chmod(0o700)

    def worker_path(self, folder: JobFolder, host_path: Path) -> str:
        """``host_path`` (inside ``folder``) as the worker sees it."""
        if not self.enabled:
            return str(host_path)
        return str(INSIDE / host_path.relative_to(folder.root))

    def command(self, folder: JobFolder, argv: list[str], keep_fds: tuple[int, ...] = ()) -> list[str]:
        """The full command line for ``argv`` (a worker command) in ``folder``."""
        limits = self._rlimits()
        if not self.enabled:
            return [*limits, *argv]
        drop = []
        if self.privileged:
            drop = [
                "setpriv",
                f"--reuid={self.config.uid}",
                f"--regid={self.config.gid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ]
        return ["bwrap", *self._namespaces(), *self._mounts(folder), *self._environment(), *limits, *drop, *argv]

    def _rlimits(self) -> list[str]:
        c = self.config
        if shutil.which("prlimit") is None:
            return []
        return [
            "prlimit",
            f"--as={c.address_space_mb * MiB}",
            f"--cpu={c.cpu_seconds}",
            f"--fsize={c.file_size_mb * MiB}",
            f"--nproc={c.processes}",
            f"--nofile={c.open_files}",
            "--core=0",
            "--",
        ]

    def _namespaces(self) -> list[str]:
        common = ["--die-with-parent", "--new-session", "--hostname", "edgeforge-job"]
        if self.privileged:
            return [
                "--unshare-pid",
                "--unshare-net",
                "--unshare-ipc",
                "--unshare-uts",
                "--unshare-cgroup-try",
                "--cap-drop",
                "ALL",
                *(a for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP") for a in ("--cap-add", cap)),
                *common,
            ]
        return ["--unshare-all", "--uid", str(self.config.uid), "--gid", str(self.config.gid), *common]

    def _mounts(self, folder: JobFolder) -> list[str]:
        # /tmp first: a Python or checkout under /tmp (a CI clone, a venv there) is bound on top of it, not hidden.
        args: list[str] = ["--bind", str(folder.work / "tmp"), "/tmp"]
        read_only = [Path(sys.base_prefix), Path(sys.prefix), code_root(), *self.config.extra_ro_paths]
        for directory in _ancestors([*read_only, INSIDE / "input"]):
            args += ["--perms", "0755", "--dir", str(directory)]
        for name in SYSTEM_DIRS:
            path = Path(name)
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), name]
            elif path.is_dir():
                args += ["--ro-bind", name, name]
        for name in ETC_FILES:
            args += ["--ro-bind-try", name, name]
        for path in dict.fromkeys(p.resolve() for p in read_only):
            args += ["--ro-bind", str(path), str(path)]
        args += ["--proc", "/proc", "--dev", "/dev", "--size", str(self.config.shm_mb * MiB), "--tmpfs", "/dev/shm"]
        args += ["--ro-bind", str(folder.input), str(INSIDE / "input")]
        args += ["--bind", str(folder.work), str(INSIDE / "work")]
        for secret in self.hidden:  # masked wherever a read-only view above would show them
            if any(secret.is_relative_to(p.resolve()) for p in read_only) and secret.exists():
                args += ["--tmpfs", str(secret)] if secret.is_dir() else ["--ro-bind", "/dev/null", str(secret)]
        return [*args, "--chdir", str(INSIDE)]

    def _environment(self) -> list[str]:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(INSIDE / "work" / "home"),
            "TMPDIR": "/tmp",
            "USER": "nobody",
            "LOGNAME": "nobody",
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(code_root()),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "EDGEFORGE_SANDBOXED": "1",
        }
        return ["--clearenv", *(a for k, v in env.items() for a in ("--setenv", k, v))]

    def environment(self) -> dict[str, str]:
        """The environment of an unsandboxed worker (``enabled = false``): the server's, minus nothing."""
        return {**os.environ, "PYTHONPATH": os.pathsep.join([str(code_root()), os.environ.get("PYTHONPATH", "")])}


def _ancestors(paths: list[Path]) -> list[Path]:
    """Every proper ancestor folder of ``paths`` (except ``/``), parents first, each once."""
    found: dict[Path, None] = {}
    for path in paths:
        for parent in reversed(Path(path).resolve().parents):
            if parent != Path("/"):
                found[parent] = None
    return sorted(found, key=lambda p: len(p.parts))
