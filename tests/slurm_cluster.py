"""A throwaway single-node SLURM cluster for tests: munged, slurmctld and slurmd in a temp dir.

Debian's ``slurm-wlm`` and ``munge`` packages are installed with apt-get when missing
(root only). There is no systemd here, so each daemon runs in the foreground in its
own session (``setsid``); the PIDs are kept and exactly those are stopped again.
Everything the cluster writes (config, keys, sockets, state, logs) lives under one
folder, every daemon listens on free ports and talks over 127.0.0.1 only, and the
node declares fake GPUs as a generic resource (files under the folder stand in for
``/dev/nvidia*``) so ``--gpus=1`` jobs can be scheduled. Clients find the cluster
through ``SLURM_CONF``, which ``env()`` sets.

Accounting is off (no slurmdbd), so ``sacct`` has nothing to report: jobs are
followed with ``squeue``, and slurmctld keeps finished jobs for ``min_job_age``
seconds, long enough for ``scontrol show job`` to describe them after a run.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "srun", "scancel", "sinfo")
_SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")  # Debian's compiled-in SLURM_CONF


class ClusterError(RuntimeError):
    """The cluster could not be installed, started or queried; the message names the log to read."""


def which(name: str) -> str | None:
    """``shutil.which`` that also looks in the sbin folders a non-login PATH may lack."""
    found = shutil.which(name)
    if found:
        return found
    for folder in _SBIN:
        candidate = Path(folder, name)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def missing_programs() -> list[str]:
    return [name for name in DAEMONS + CLIENTS if which(name) is None]


def ensure_installed(timeout: float = 900) -> None:
    """Install Debian's slurm-wlm and munge with apt-get unless every program is already there.

    Raises ``ClusterError`` when programs are missing and this process is not root
    (apt-get needs root) or when apt-get fails; its output is in the message.
    """
    missing = missing_programs()
    if not missing:
        return
    if os.geteuid() != 0:
        raise ClusterError(f"SLURM programs {missing} are missing and installing them needs root (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]):
        log.info("running %s", " ".join(cmd))
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    still = missing_programs()
    if still:
        raise ClusterError(f"apt-get installed {PACKAGES} but {still} are still not on PATH")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SlurmCluster:
    """A running single-node cluster; use as a context manager or call ``stop()``."""

    root: Path
    node: str
    gpus: int
    cpus: int
    min_job_age: int
    pids: dict[str, int] = field(default_factory=dict)
    _procs: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)
    _linked_conf: Path | None = field(default=None, repr=False)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def env(self, base: dict | None = None) -> dict[str, str]:
        """An environment whose SLURM clients (sbatch, squeue, ...) talk to this cluster."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        path = env.get("PATH", "")
        env["PATH"] = os.pathsep.join([path, *[d for d in _SBIN if d not in path.split(os.pathsep)]])
        return env

    def run(self, *args: str, timeout: float = 30) -> str:
        """Run a SLURM client against this cluster and return its stdout (``ClusterError`` on failure)."""
        proc = subprocess.run(list(args), env=self.env(), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise ClusterError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld still knows (queued, running, or finished within MinJobAge), one dict each.

        ``scontrol show job -d --oneliner`` prints ``Key=Value`` pairs; values never
        contain spaces except ``Command``/``Comment``-like free text, which is kept whole
        by splitting only before tokens that look like ``Key=``.
        """
        out = self.run("scontrol", "show", "job", "-d", "--oneliner")
        return [_parse_oneliner(line) for line in out.splitlines() if line.startswith("JobId=")]

    def log_text(self, daemon: str) -> str:
        path = self.root / "log" / f"{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, timeout: float = 15) -> None:
        """Stop the daemons this object started (by PID, newest first); nothing else is touched."""
        for name in reversed(list(self._procs)):
            proc = self._procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    log.warning("%s (pid %d) ignored SIGTERM; sending SIGKILL", name, proc.pid)
                    proc.kill()
                    proc.wait(timeout=timeout)
        self._procs.clear()
        link = self._linked_conf
        if link is not None and link.is_symlink() and Path(os.readlink(link)) == self.conf:
            link.unlink()
        self._linked_conf = None

    def __enter__(self) -> "SlurmCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


_KEY = re.compile(r"^[A-Z][A-Za-z0-9_:/]*$")


def _parse_oneliner(line: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for token in line.split(" "):
        name, sep, value = token.partition("=")
        if sep and _KEY.match(name):
            key = name
            fields[key] = value
        elif key is not None and token:
            fields[key] += " " + token
    return {k: v.strip() for k, v in fields.items()}


def _gres_lines(folder: Path, node: str, gpus: int) -> str:
    """gres.conf lines for ``gpus`` fake GPUs.

    slurmd numbers GPUs by their device files and sets CUDA_VISIBLE_DEVICES from
    them; it accepts only character devices, so each fake card is a copy of
    /dev/null (major 1, minor 3). Where mknod is not allowed the cards are declared
    by count alone (still schedulable, without CUDA_VISIBLE_DEVICES).
    """
    lines = []
    try:
        for i in range(gpus):
            dev = folder / f"nvidia{i}"
            if not dev.exists():
                os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
            lines.append(f"NodeName={node} Name=gpu File={dev}")
    except OSError as err:
        log.warning("cannot create fake GPU device files (%s); declaring GPUs by count", err)
        lines = [f"NodeName={node} Name=gpu Count={gpus}"]
    return "\n".join(lines) + "\n"


def write_config(root: Path, *, node: str, cpus: int, gpus: int, memory_mb: int, min_job_age: int) -> Path:
    """Write slurm.conf and gres.conf for one node at 127.0.0.1 with ``gpus`` fake GPUs."""
    for sub in ("state", "spool", "log", "run", "dev"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "gres.conf").write_text("AutoDetect=off\n" + _gres_lines(root / "dev", node, gpus))
    conf = f"""\
# Single-node test cluster written by tests/slurm_cluster.py; everything lives in {root}.
ClusterName=flatscape
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root / "run" / "munge.socket"}
CredType=cred/munge
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "run" / "slurmctld.pid"}
SlurmdPidFile={root / "run" / "slurmd.pid"}
SlurmctldLogFile={root / "log" / "slurmctld.log"}
SlurmdLogFile={root / "log" / "slurmd.log"}
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in a container: track processes through /proc and bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Without slurmdbd the executor plugin follows jobs with squeue, which sees a finished
# job only while slurmctld keeps it: MinJobAge must exceed 3x its first status wait.
MinJobAge={min_job_age}
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
# The node may declare more than the machine has (fake GPUs, room for parallel jobs).
SlurmdParameters=config_overrides
NodeName={node} NodeAddr=127.0.0.1 NodeHostname={node} CPUs={cpus} RealMemory={memory_mb} Gres=gpu:{gpus} State=UNKNOWN
# The partition names of workflow/profiles/slurm/partitions.yaml, both on the one node.
PartitionName=cpu Nodes={node} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={node} MaxTime=INFINITE State=UP
"""
    (root / "slurm.conf").write_text(conf)
    return root / "slurm.conf"


def start_cluster(
    root: str | os.PathLike | None = None,
    *,
    cpus: int = 8,
    gpus: int = 2,
    memory_mb: int = 64_000,
    min_job_age: int = 300,
    timeout: float = 60,
) -> SlurmCluster:
    """Install (if needed) and start munged, slurmctld and slurmd; return once the node is idle.

    ``cpus`` and ``memory_mb`` are what the node declares to the scheduler (more than
    the machine has, so a few small jobs run side by side); ``gpus`` fake GPUs make
    ``--gpus=1`` jobs schedulable. Raises ``ClusterError`` naming the daemon's log
    when something does not come up; daemons already started are stopped again.
    """
    ensure_installed()
    root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="slurm-"))
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)  # munged refuses folders others can write to
    node = socket.gethostname().split(".")[0]
    write_config(root, node=node, cpus=cpus, gpus=gpus, memory_mb=memory_mb, min_job_age=min_job_age)
    cluster = SlurmCluster(root=root, node=node, gpus=gpus, cpus=cpus, min_job_age=min_job_age)
    try:
        _link_default_conf(cluster)
        _start_munged(cluster)
        _start(cluster, "slurmctld", [which("slurmctld"), "-D", "-f", str(cluster.conf)])
        _wait(cluster, "slurmctld", lambda: _ok(cluster, "scontrol", "ping"), timeout)
        _start(cluster, "slurmd", [which("slurmd"), "-D", "-f", str(cluster.conf), "-N", node])
        _wait(cluster, "slurmd", lambda: _node_ready(cluster), timeout)
    except BaseException:
        cluster.stop()
        raise
    # The daemons have sessions of their own, so they would outlive a test run that
    # ends without its fixture teardown; stop() is idempotent.
    atexit.register(cluster.stop)
    log.info("SLURM cluster up in %s (pids %s)", root, cluster.pids)
    return cluster


def _link_default_conf(cluster: SlurmCluster) -> None:
    """Make /etc/slurm/slurm.conf point at this cluster's config for as long as it runs.

    The executor plugin's job step (snakemake-executor-plugin-slurm-jobstep) starts
    each rule with ``srun`` after dropping every SLURM_* variable it does not know,
    SLURM_CONF included, so that srun reads only the compiled-in default path. A
    configured SLURM already there is never touched: that is an error instead.
    """
    default = DEFAULT_CONF
    if default.is_symlink() and not default.exists():
        default.unlink()  # dangling link from a test cluster that was killed
    if default.exists() or default.is_symlink():
        if default.is_symlink() and default.resolve() == cluster.conf.resolve():
            return
        raise ClusterError(f"{default} exists (a configured SLURM?); the test cluster needs that path for its own config")
    try:
        default.parent.mkdir(parents=True, exist_ok=True)
        default.symlink_to(cluster.conf)
    except OSError as err:
        raise ClusterError(f"cannot link {default} to {cluster.conf}: {err}") from err
    cluster._linked_conf = default


def _start_munged(cluster: SlurmCluster) -> None:
    root = cluster.root
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o600)
    cmd = [
        which("munged"), "--foreground", "--force",
        f"--socket={root / 'run' / 'munge.socket'}",
        f"--key-file={key}",
        f"--pid-file={root / 'run' / 'munged.pid'}",
        f"--seed-file={root / 'state' / 'munged.seed'}",
        f"--log-file={root / 'log' / 'munged.log'}",
    ]
    _start(cluster, "munged", cmd)
    _wait(cluster, "munged", lambda: (root / "run" / "munge.socket").exists(), 20)


def _start(cluster: SlurmCluster, name: str, cmd: list) -> None:
    out = open(cluster.root / "log" / f"{name}.out", "wb")
    # A session of its own: a Ctrl-C or SIGHUP aimed at the test runner does not reach it,
    # and stop() signals exactly this PID.
    proc = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            env=cluster.env(), start_new_session=True)
    out.close()
    cluster._procs[name] = proc
    cluster.pids[name] = proc.pid


def _ok(cluster: SlurmCluster, *args: str) -> bool:
    try:
        cluster.run(*args, timeout=10)
        return True
    except (ClusterError, subprocess.TimeoutExpired):
        return False


def _node_ready(cluster: SlurmCluster) -> bool:
    try:
        state = cluster.run("sinfo", "--noheader", "--Node", "--format=%t", timeout=10).strip()
    except (ClusterError, subprocess.TimeoutExpired):
        return False
    states = set(state.split())  # one line per partition the node is in
    return bool(states) and states <= {"idle", "mix", "alloc"}


def _wait(cluster: SlurmCluster, name: str, ready, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    proc = cluster._procs[name]
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterError(f"{name} exited with {proc.returncode}; see {cluster.root / 'log'}/{name}.*:\n"
                               + _tail(cluster, name))
        if ready():
            return
        time.sleep(0.2)
    raise ClusterError(f"{name} not ready after {timeout:.0f} s; see {cluster.root / 'log'}/{name}.*:\n"
                       + _tail(cluster, name))


def _tail(cluster: SlurmCluster, name: str, n: int = 30) -> str:
    lines = []
    for suffix in ("log", "out"):
        path = cluster.root / "log" / f"{name}.{suffix}"
        if path.exists():
            lines += path.read_text(errors="replace").splitlines()[-n:]
    return "\n".join(lines)
