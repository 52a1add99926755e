"""A one-node SLURM cluster on this machine: munge, slurmctld and slurmd from Debian's packages.

    python -m framework.app.slurm_cluster start        # state in outputs/slurm/, partition `local`
    export SLURM_CONF=$PWD/outputs/slurm/etc/slurm.conf
    spiketune -m simulation.n_steps=20,40 hydra/launcher=slurm_local tracking.uri=http://...
    python -m framework.app.slurm_cluster stop

It is the real scheduler (``sbatch``, job arrays, ``srun`` steps, ``squeue``) on a private
configuration, so the tests and a laptop can run ``hydra/launcher=slurm`` end to end without a
cluster; nothing is written outside the state folder (``--dir``, default ``outputs/slurm``):

* ``munge/``: a private munge key (1 KiB of random bytes, mode 400) and ``munged``'s pid, log and
  seed; ``run/`` its socket (munged insists that the socket's folder is open to everyone).
* ``etc/slurm.conf``: one node named after this machine at 127.0.0.1, with ``--cpus`` CPUs and
  ``--memory-mb`` MB, in partition ``--partition``; slurmctld and slurmd listen on 127.0.0.1 only
  (``CommunicationParameters=NoInAddrAny,NoCtldInAddrAny``) at ``--ctld-port`` / ``--slurmd-port``.
  Every client (``sbatch``, ``squeue``, submitit) finds it through ``$SLURM_CONF``.
* ``state/``, ``spool/``, ``log/``: slurmctld's saved state, slurmd's spool, both daemons' logs.

What a container allows decides the plugins: no cgroups (``proctrack/linuxproc`` tracks a job's
processes through ``/proc``; ``task/none`` binds no CPUs), no accounting database
(``accounting_storage/none``: ``sacct`` answers "accounting storage is disabled", so submitit
notices a finished job by its result file and warns that it could not ask ``sacct``). slurmd must
run as root: it starts every job as the user who submitted it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framework import paths
from framework.daemons import EXIT_NOT_RUNNING, MAX_SOCKET_PATH, alive, port_free, telling_line
from framework.errors import EXIT_INTERNAL, EXIT_USER, UserError

PARTITION = "local"
CTLD_PORT = 6817  # SLURM's own defaults
SLURMD_PORT = 6818
DAEMONS = ("slurmd", "slurmctld", "munged")  # stopped in this order, started in the reverse


def default_dir() -> Path:
    """``outputs/slurm`` (under ``$SPIKETUNE_OUTPUTS`` when set)."""
    return paths.OUTPUTS / "slurm"


@dataclass(frozen=True)
class Layout:
    """Where the cluster's files live inside its state folder."""

    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def munge_dir(self) -> Path:
        return self.root / "munge"

    @property
    def key(self) -> Path:
        return self.munge_dir / "munge.key"

    @property
    def munge_socket(self) -> Path:
        return self.root / "run" / "munge.socket"

    @property
    def state(self) -> Path:
        return self.root / "cluster.json"

    def pid_file(self, daemon: str) -> Path:
        return self.munge_dir / "munged.pid" if daemon == "munged" else self.root / f"{daemon}.pid"

    def log(self, daemon: str) -> Path:
        return self.munge_dir / "munged.log" if daemon == "munged" \
            else self.root / "log" / f"{daemon}.log"


def node_name() -> str:
    """This machine's short host name: slurmd runs under it (``-N``) and slurm.conf names it."""
    return socket.gethostname().split(".")[0]


def _memory_mb() -> int:
    """90 % of this machine's memory, MB: slurmd drains a node that declares more than it has."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(int(line.split()[1]) / 1024 * 0.9)
    except OSError:
        pass
    return 1024


def find(tool: str) -> str:
    """The path of a SLURM or munge program (``/usr/sbin`` included, where Debian puts daemons)."""
    found = shutil.which(tool, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin",
                                                     "/sbin"]))
    if not found:
        raise UserError(f"slurm: {tool} not found; install Debian's packages "
                        f"(apt-get install slurm-wlm munge)")
    return found


def slurm_conf(layout: Layout, cpus: int, memory_mb: int, partition: str, ctld_port: int,
               slurmd_port: int) -> str:
    """The text of slurm.conf for the one node of this machine."""
    node = node_name()
    r = layout.root
    return f"""# written by python -m framework.app.slurm_cluster: one-node cluster, this machine
ClusterName=spiketune
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
# loopback only: both daemons bind the address their host name resolves to (127.0.0.1 above)
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={layout.munge_socket}
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={layout.pid_file('slurmctld')}
SlurmdPidFile={layout.pid_file('slurmd')}
SlurmctldLogFile={layout.log('slurmctld')}
SlurmdLogFile={layout.log('slurmd')}
# no cgroups in a container: processes tracked through /proc, no CPU binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# no accounting database (slurmdbd): sacct is disabled, squeue and scontrol work
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
# CPUs are the consumable (memory requests are checked against the node but not shared out)
SelectTypeParameters=CR_CPU
# the node is what this file says, even when it offers fewer CPUs than the machine has
SlurmdParameters=config_overrides
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=10
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _env(layout: Layout) -> dict[str, str]:
    return dict(os.environ, SLURM_CONF=str(layout.conf))


def _pid(layout: Layout, daemon: str) -> int | None:
    try:
        pid = int(layout.pid_file(daemon).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid, daemon) else None


def _log_line(path: Path) -> str:
    try:
        return telling_line(path.read_text(errors="replace"))
    except OSError:
        return f"(no log at {path})"


def _run(cmd: list[str], layout: Layout, timeout: float = 60,
         stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, env=_env(layout), capture_output=True, timeout=timeout,
                          input=stdin, cwd=str(layout.root))


def _start_munge(layout: Layout) -> None:
    layout.munge_dir.mkdir(mode=0o700, exist_ok=True)
    layout.munge_dir.chmod(0o700)  # munged refuses a key folder others can enter
    layout.munge_socket.parent.mkdir(exist_ok=True)
    layout.munge_socket.parent.chmod(0o755)  # ... and a socket folder they cannot
    if not layout.key.exists():
        fd = os.open(layout.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(1024))
    if _pid(layout, "munged") is None:
        done = _run([find("munged"), f"--socket={layout.munge_socket}",
                     f"--key-file={layout.key}", f"--log-file={layout.log('munged')}",
                     f"--pid-file={layout.pid_file('munged')}",
                     f"--seed-file={layout.munge_dir / 'munged.seed'}"], layout)
        if done.returncode != 0:
            raise RuntimeError(f"munged did not start: "
                               f"{(done.stderr or done.stdout).decode().strip()[:300]}")
    # a credential made and read back through the socket: what slurmctld and slurmd will do
    cred = _run([find("munge"), "-n", "-S", str(layout.munge_socket)], layout, timeout=20)
    back = _run([find("unmunge"), "-S", str(layout.munge_socket)], layout, timeout=20,
                stdin=cred.stdout)
    if cred.returncode != 0 or back.returncode != 0:
        raise RuntimeError(f"munge does not answer on {layout.munge_socket}: "
                           f"{(back.stderr or cred.stderr).decode().strip()[:300]}")


def _node_state(layout: Layout) -> str:
    done = _run([find("sinfo"), "-h", "-N", "-n", node_name(), "-o", "%T"], layout, timeout=20)
    return done.stdout.decode().strip().lower() if done.returncode == 0 else ""


def start(root: Path, cpus: int | None = None, memory_mb: int | None = None,
          partition: str = PARTITION, ctld_port: int = CTLD_PORT,
          slurmd_port: int = SLURMD_PORT, timeout: float = 60.0) -> dict[str, Any]:
    """Configure the cluster in ``root`` and start munged, slurmctld and slurmd (left running).

    Parameters
    ----------
    root : Path
        The state folder (created if missing).
    cpus : int, optional
        CPUs the node offers to jobs; default all of this machine's.
    memory_mb : int, optional
        Memory the node declares, MB; default 90 % of this machine's.
    partition : str
        The partition's name (``hydra.launcher.partition``).
    ctld_port, slurmd_port : int
        TCP ports of slurmctld and slurmd on 127.0.0.1.
    timeout : float
        Seconds to wait for the node to become idle.

    Returns
    -------
    dict
        What ``<root>/cluster.json`` records: ``conf`` (the ``SLURM_CONF``), ``node``,
        ``partition``, ``cpus``, ``memory_mb``, the ports and the daemons' ``pids``.
    """
    layout = _state_folder(root.absolute())
    cpus = cpus or os.cpu_count() or 1
    memory_mb = memory_mb or _memory_mb()
    running = {d: _pid(layout, d) for d in DAEMONS}
    if all(running.values()) and _node_state(layout) in ("idle", "mixed", "allocated"):
        return {**json.loads(layout.state.read_text()), "already": True}
    for name, port in (("--ctld-port", ctld_port), ("--slurmd-port", slurmd_port)):
        daemon = "slurmctld" if name == "--ctld-port" else "slurmd"
        if not running[daemon] and not port_free("127.0.0.1", port):
            raise UserError(f"{name}: 127.0.0.1:{port} is in use; choose another")
    layout.conf.write_text(slurm_conf(layout, cpus, memory_mb, partition, ctld_port,
                                      slurmd_port))
    _start_munge(layout)
    _start_slurm(layout)
    _wait_idle(layout, timeout)
    record = {"conf": str(layout.conf), "node": node_name(), "partition": partition,
              "cpus": cpus, "memory_mb": memory_mb, "ctld_port": ctld_port,
              "slurmd_port": slurmd_port, "pids": {d: _pid(layout, d) for d in DAEMONS}}
    layout.state.write_text(json.dumps(record, indent=1))
    return {**record, "already": False}


def _state_folder(root: Path) -> Layout:
    """The layout of ``root`` (absolute), its folders created; refused when not run as root,
    when ``root`` is a file, or too deep for munge's socket path."""
    if os.geteuid() != 0:
        raise UserError("slurm: the cluster needs root: slurmd starts each job as the user who "
                        "submitted it")
    if root.exists() and not root.is_dir():
        raise UserError(f"--dir: {root} is a file, not a folder")
    layout = Layout(root)
    if len(str(layout.munge_socket)) > MAX_SOCKET_PATH:
        raise UserError(f"--dir: {root} is too deep for munge's socket; choose a shorter path")
    for sub in ("etc", "state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return layout


def _start_slurm(layout: Layout) -> None:
    """Start slurmctld, then slurmd (each unless it runs already)."""
    for daemon, extra in (("slurmctld", []), ("slurmd", ["-N", node_name()])):
        if _pid(layout, daemon) is not None:
            continue
        done = _run([find(daemon), "-f", str(layout.conf), *extra], layout)
        if done.returncode != 0:
            raise RuntimeError(f"{daemon} did not start ({layout.log(daemon)}): "
                               f"{_log_line(layout.log(daemon))}")


def _wait_idle(layout: Layout, timeout: float) -> None:
    """Wait up to ``timeout`` seconds for the node to take jobs; RuntimeError naming the daemon
    that exited, or the node's state when it is still not ready."""
    deadline = time.monotonic() + timeout
    while (state := _node_state(layout)) not in ("idle", "mixed", "allocated"):
        missing = [d for d in DAEMONS if _pid(layout, d) is None]
        if missing:
            raise RuntimeError(f"{missing[0]} exited while starting ({layout.log(missing[0])}): "
                               f"{_log_line(layout.log(missing[0]))}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"node {node_name()} is '{state or 'unknown'}', not idle, after "
                               f"{timeout:.0f} s ({layout.log('slurmctld')})")
        time.sleep(0.5)


def _end(pid: int, daemon: str, timeout: float) -> str:
    """SIGTERM ``pid``, SIGKILL after ``timeout`` s; ``stopped`` or ``killed``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid, daemon):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return "killed"
        time.sleep(0.1)
    return "stopped"


def stop(root: Path, timeout: float = 30.0) -> dict[str, str]:
    """Cancel the cluster's jobs, then stop slurmd, slurmctld and munged.

    Returns
    -------
    dict
        For each daemon ``stopped``, ``killed`` (still there ``timeout`` s after SIGTERM) or
        ``not running``; ``jobs``: how many jobs were cancelled.
    """
    layout = Layout(root.absolute())
    how: dict[str, str] = {}
    if _pid(layout, "slurmctld") is not None and layout.conf.exists():
        queue = _run([find("squeue"), "-h", "-o", "%i"], layout, timeout=20)
        jobs = queue.stdout.decode().split() if queue.returncode == 0 else []
        if jobs:  # a job's processes would outlive slurmd otherwise
            _run([find("scancel"), "--full", *{j.split("_")[0] for j in jobs}], layout)
            deadline = time.monotonic() + timeout
            while _run([find("squeue"), "-h", "-o", "%i"], layout).stdout.strip() \
                    and time.monotonic() < deadline:
                time.sleep(0.5)
        how["jobs"] = str(len(jobs))
    for daemon in DAEMONS:
        pid = _pid(layout, daemon)
        how[daemon] = _end(pid, daemon, timeout) if pid else "not running"
    layout.state.unlink(missing_ok=True)
    return how


def status(root: Path) -> dict[str, str]:
    """Each daemon ``up`` or ``not running``, and the node's state (``idle``, ``allocated``...)."""
    layout = Layout(root.absolute())
    out = {d: "up" if _pid(layout, d) else "not running" for d in DAEMONS}
    out["node"] = (_node_state(layout) or "unknown") if out["slurmctld"] == "up" else "unknown"
    out["conf"] = str(layout.conf)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m framework.app.slurm_cluster",
                                description="A one-node SLURM cluster on this machine.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{start,stop,status}")
    for name, text in (("start", "configure and start munged, slurmctld and slurmd"),
                       ("stop", "cancel the jobs and stop the daemons"),
                       ("status", "say what runs (exit 0 when up, 3 when not)")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--dir", type=Path, default=None,
                       help="state folder (default outputs/slurm)")
        if name == "start":
            s.add_argument("--cpus", type=int, default=None,
                           help="CPUs the node offers (default all)")
            s.add_argument("--memory-mb", type=int, default=None,
                           help="memory the node declares, MB (default 90%% of the machine's)")
            s.add_argument("--partition", default=PARTITION, help="partition name (local)")
            s.add_argument("--ctld-port", type=int, default=CTLD_PORT, help="slurmctld's port")
            s.add_argument("--slurmd-port", type=int, default=SLURMD_PORT, help="slurmd's port")
            s.add_argument("--timeout", type=float, default=60.0,
                           help="seconds to wait for the node")
    return p


def _check_start_args(args: argparse.Namespace) -> None:
    """Refuse ``start`` arguments no cluster can take, naming the option."""
    for key in ("cpus", "memory_mb"):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise UserError(f"--{key.replace('_', '-')}: must be at least 1, got {value}")
    for key in ("ctld_port", "slurmd_port"):
        if not 0 < getattr(args, key) < 65536:
            raise UserError(f"--{key.replace('_', '-')}: must be in 1..65535, got "
                            f"{getattr(args, key)}")
    if args.ctld_port == args.slurmd_port:
        raise UserError("--slurmd-port: must differ from --ctld-port")
    if not args.partition.replace("_", "").replace("-", "").isalnum():
        raise UserError(f"--partition: {args.partition!r} is not a partition name")


def _command(args: argparse.Namespace, root: Path, prog: str) -> None:
    """Run ``start``, ``stop`` or ``status`` and say what happened."""
    if args.command == "start":
        _check_start_args(args)
        info = start(root, args.cpus, args.memory_mb, args.partition, args.ctld_port,
                     args.slurmd_port, args.timeout)
        what = "already running" if info["already"] else "started"
        print(f"{prog}: {what}: node {info['node']} ({info['cpus']} CPUs, "
              f"{info['memory_mb']} MB) in partition {info['partition']}", file=sys.stderr)
        print(f"{prog}: point SLURM's commands (and submitit) at it:", file=sys.stderr)
        print(f"export SLURM_CONF={info['conf']}")
    elif args.command == "stop":
        how = stop(root)
        print(f"{prog}: " + ", ".join(f"{k} {v}" for k, v in how.items()), file=sys.stderr)
    else:
        now = status(root)
        print(f"{prog}: " + ", ".join(f"{k} {v}" for k, v in now.items()))
        if any(now[d] != "up" for d in DAEMONS):
            sys.exit(EXIT_NOT_RUNNING)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m framework.app.slurm_cluster``."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    root = args.dir if args.dir is not None else default_dir()
    prog = "slurm_cluster"
    try:
        _command(args, root, prog)
    except UserError as ex:
        print(f"{prog}: {ex}", file=sys.stderr)
        sys.exit(EXIT_USER)
    except (RuntimeError, OSError, subprocess.SubprocessError) as ex:
        print(f"{prog}: {ex}", file=sys.stderr)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
