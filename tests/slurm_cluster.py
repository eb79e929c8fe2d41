"""A private single-node SLURM for the tests: munged, slurmctld and slurmd run from one temporary folder.

Everything they read or write (munge key and socket, slurm.conf, state, spool, logs, pid files) lives in that
folder, on ports nobody else uses, so nothing under /etc or /var is written and a SLURM the machine may
already run is left alone. Client commands (sbatch, squeue, and the Snakemake SLURM plugin that calls them)
find this cluster through ``SLURM_CONF``. Inside a job that is not enough: the plugin's job step removes
every ``SLURM_*`` variable but the job's identity before it calls ``srun``, which then reads
/etc/slurm/slurm.conf. So slurmd, and with it every job, runs in a private mount namespace in which
/etc/slurm is the folder's ``etc`` (util-linux ``unshare``); the rest of the machine still sees the real
/etc/slurm. The daemons must run as root (slurmd starts jobs as their user). Debian packages: ``slurm-wlm``
and ``munge``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = {"slurmctld": "slurm-wlm", "slurmd": "slurm-wlm", "sbatch": "slurm-wlm", "squeue": "slurm-wlm",
            "munged": "munge", "unshare": "util-linux"}


def missing_requirements() -> str | None:
    """Why a private SLURM cannot start here (missing packages, not root), or None when it can."""
    packages = sorted({package for command, package in PACKAGES.items() if not _find(command)})
    if packages:
        return f"SLURM is not installed: the Debian packages {' and '.join(packages)} are missing"
    if os.geteuid() != 0:
        return "a private SLURM needs root (slurmd starts jobs as their user and munged must own its key)"
    return None


def _find(command: str) -> str | None:
    return shutil.which(command, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _slurm_conf(folder: Path, host: str, munge_socket: Path) -> str:
    """One node (this machine, all its cores and 90% of its memory) in one default partition ``main``;
    no accounting database, so job records stay in slurmctld (for squeue) for MinJobAge seconds: an hour,
    longer than any test."""
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 * 9 // 10
    settings = {
        "ClusterName": "camfaith", "SlurmctldHost": host, "SlurmUser": "root", "SlurmdUser": "root",
        "SlurmctldPort": _free_port(), "SlurmdPort": _free_port(),
        "AuthType": "auth/munge", "CredType": "cred/munge", "AuthInfo": f"socket={munge_socket}",
        "StateSaveLocation": folder / "state", "SlurmdSpoolDir": folder / "spool",
        "SlurmctldPidFile": folder / "slurmctld.pid", "SlurmdPidFile": folder / "slurmd.pid",
        "SlurmctldLogFile": folder / "log/slurmctld.log", "SlurmdLogFile": folder / "log/slurmd.log",
        "ProctrackType": "proctrack/linuxproc", "TaskPlugin": "task/none", "MpiDefault": "none",
        "SelectType": "select/cons_tres", "SelectTypeParameters": "CR_Core_Memory",
        "AccountingStorageType": "accounting_storage/none", "JobAcctGatherType": "jobacct_gather/none",
        "MailProg": "/bin/true", "ReturnToService": 2, "MinJobAge": 3600,
    }
    lines = [f"{name}={value}" for name, value in settings.items()]
    lines += [f"NodeName={host} CPUs={os.cpu_count()} RealMemory={memory_mb} State=UNKNOWN",
              f"PartitionName=main Nodes={host} Default=YES MaxTime=INFINITE State=UP"]
    return "\n".join(lines) + "\n"


def _start_munge(folder: Path, log) -> tuple[subprocess.Popen, Path]:
    """munged with its own key (1024 random bytes, mode 0400 in a 0700 folder) and socket."""
    keys, run = folder / "munge-key", folder / "munge"
    keys.mkdir(mode=0o700)
    run.mkdir(mode=0o755)
    key = keys / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    sock = run / "munge.socket"
    daemon = subprocess.Popen(
        [_find("munged"), "--foreground", "--force", f"--socket={sock}", f"--key-file={key}",
         f"--pid-file={run / 'munged.pid'}", f"--log-file={folder / 'log/munged.log'}",
         f"--seed-file={run / 'munged.seed'}"], stdout=log, stderr=subprocess.STDOUT)
    _wait(lambda: sock.exists(), daemon, "munged did not create its socket")
    return daemon, sock


def _wait(ready, daemon: subprocess.Popen | None, problem: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if daemon is not None and daemon.poll() is not None:
            raise RuntimeError(f"{problem}: it exited with status {daemon.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{problem} within {timeout:.0f} s")
        time.sleep(0.2)


def _node_state(env: dict) -> str:
    result = subprocess.run(["sinfo", "--noheader", "--format=%T"], env=env, capture_output=True, text=True)
    return result.stdout.strip()


def log_tails(folder: Path, characters: int = 1500) -> str:
    """The end of each daemon's log, for a test's failure message."""
    return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-characters:]}"
                     for path in sorted((folder / "log").glob("*")))


@contextlib.contextmanager
def single_node_slurm(folder: str | os.PathLike):
    """Start munged, slurmctld and slurmd from ``folder``; yield the environment that reaches this cluster.

    On the way out (also after an error) every job still in the cluster is cancelled and the three
    daemons are stopped by their process ids, youngest first.
    """
    folder = Path(folder)
    (folder / "log").mkdir(parents=True)
    for name in ("state", "spool"):
        (folder / name).mkdir()
    host = socket.gethostname().split(".")[0]  # what slurmd takes for its node name (hostname -s)
    daemons = []
    (folder / "etc").mkdir()
    env = os.environ | {"SLURM_CONF": str(folder / "etc/slurm.conf")}
    with open(folder / "log/daemons.out", "ab") as log:
        try:
            munged, munge_socket = _start_munge(folder, log)
            daemons.append(munged)
            Path(env["SLURM_CONF"]).write_text(_slurm_conf(folder, host, munge_socket))
            daemons.append(subprocess.Popen([_find("slurmctld"), "-D", "-f", env["SLURM_CONF"]], env=env,
                                            stdout=log, stderr=subprocess.STDOUT))
            in_namespace = 'mount --bind "$0" /etc/slurm && exec "$1" -D -f "$0/slurm.conf"'
            daemons.append(subprocess.Popen([_find("unshare"), "--mount", "--propagation", "private", "sh", "-c",
                                             in_namespace, folder / "etc", _find("slurmd")], env=env,
                                            stdout=log, stderr=subprocess.STDOUT))
            _wait(lambda: _node_state(env) == "idle", daemons[-1], f"the node {host} was not idle")
            yield env
        finally:
            if len(daemons) == 3:
                subprocess.run(["scancel", "--full", "--partition=main"], env=env, capture_output=True)
                with contextlib.suppress(RuntimeError):
                    _wait(lambda: _running_jobs(env) == "", None, "jobs did not stop", timeout=20)
            for daemon in reversed(daemons):
                _stop(daemon)


def _running_jobs(env: dict) -> str:
    result = subprocess.run(["squeue", "--noheader", "--states=PENDING,RUNNING,COMPLETING"], env=env,
                            capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def _stop(daemon: subprocess.Popen) -> None:
    daemon.terminate()
    try:
        daemon.wait(timeout=15)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
