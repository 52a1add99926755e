"""Real services for the slow tests: an MLflow tracking server on PostgreSQL (``spiketune-server``),
a one-node SLURM cluster (``framework.app.slurm_cluster``) and a Ray head (``ray start --head``).

Each is started by the test session that needs it, bound to 127.0.0.1, in a folder of its own
under /tmp (not pytest's tmp: that is private to root, and PostgreSQL runs as the ``postgres``
account, which must reach its folder; unix-socket paths must also stay short), and stopped by the
process ids it started, with a check that nothing of it is left.

``mlflow_server`` is a session fixture: a test module imports it (``from helpers.services import
mlflow_server``) and every module in the same pytest process shares one server; each test logs to
an experiment of its own, so counts never mix.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_dir(prefix: str) -> Path:
    """A new folder under /tmp that other local accounts may enter (mode 755)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def need(*tools: str) -> None:
    """Fail (not skip) naming what to install: ``make test`` and CI run these tests for real."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    missing = [t for t in tools if not shutil.which(t, path=search)
               and not (t == "initdb" and list(Path("/usr/lib/postgresql").glob("*/bin/initdb")))]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: apt-get install -y postgresql slurm-wlm "
                    f"munge (.ci/run does it)", pytrace=False)


def alive(pid: int) -> bool:
    """``pid`` runs: it exists and is no zombie (ended, waiting for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


def group_alive(pgid: int) -> bool:
    """Any process of group ``pgid`` runs (zombies excluded)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in "ZX":
                return True
    return False


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def sweep_runs(url: str, experiment: str) -> tuple[list, list, list]:
    """``(parents, children, all runs)`` of ``experiment`` on the tracking server at ``url``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment} in {url}"
    found = list(client.search_runs([exp.experiment_id], max_results=1000))
    parents = [r for r in found if r.data.tags.get("spiketune.sweep") == "parent"]
    kids = [r for r in found if r.data.tags.get("spiketune.sweep") == "child"]
    return parents, kids, found


# ------------------------------------------------------------------------------ MLflow server
@dataclass
class Server:
    """A running ``spiketune-server``: its URL, data folder and port."""

    url: str
    data: Path
    port: int

    def cli(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "spiketune-server"), *args, "--data", str(self.data)],
                              capture_output=True, text=True, timeout=timeout)

    def start(self) -> None:
        proc = self.cli("start", "--port", str(self.port))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == self.url, proc.stdout

    def stop(self) -> None:
        """Stop it and check that the MLflow server's process group and PostgreSQL are gone."""
        state = json.loads((self.data / "server.json").read_text())
        postmaster = int((self.data / "postgres" / "postmaster.pid").read_text().split()[0])
        proc = self.cli("stop")
        assert proc.returncode == 0, proc.stderr
        assert "mlflow stopped, postgres stopped" in proc.stderr, proc.stderr
        assert not group_alive(int(state["pid"])), "an MLflow server process is left"
        assert not alive(postmaster), "the postmaster is left"
        assert not listening(self.port)
        assert not (self.data / "server.json").exists()


@pytest.fixture(scope="session")
def mlflow_server():
    """A PostgreSQL-backed MLflow tracking server for this pytest process; stopped at its end."""
    need("initdb")
    data = service_dir("st-srv-") / "server"
    server = Server(url="", data=data, port=free_port())
    server.url = f"http://127.0.0.1:{server.port}"
    server.start()
    try:
        yield server
    finally:
        try:
            if (data / "server.json").exists():
                server.stop()
        finally:
            shutil.rmtree(data.parent, ignore_errors=True)


# ------------------------------------------------------------------------------- SLURM cluster
@contextlib.contextmanager
def slurm_cluster(cpus: int = 1):
    """A one-node SLURM cluster (partition ``local``); yields the environment that points
    SLURM's commands at it (``SLURM_CONF``)."""
    need("munged", "slurmctld", "slurmd", "sbatch")
    root = service_dir("st-slurm-")
    cmd = [sys.executable, "-m", "framework.app.slurm_cluster"]
    proc = subprocess.run([*cmd, "start", "--dir", str(root), "--cpus", str(cpus),
                           "--ctld-port", str(free_port()), "--slurmd-port", str(free_port())],
                          capture_output=True, text=True, timeout=120, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    conf = proc.stdout.strip().removeprefix("export SLURM_CONF=")
    pids = json.loads((root / "cluster.json").read_text())["pids"]
    try:
        yield dict(os.environ, SLURM_CONF=conf)
    finally:
        try:
            proc = subprocess.run([*cmd, "stop", "--dir", str(root)], capture_output=True,
                                  text=True, timeout=120, cwd=str(REPO))
            assert proc.returncode == 0, proc.stderr
            assert "slurmd stopped, slurmctld stopped, munged stopped" in proc.stderr, proc.stderr
            assert not [d for d, pid in pids.items() if alive(pid)]
        finally:
            shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------------------------- Ray head
#: Ray replaces 127.0.0.1 as a node address by the machine's outward address and binds its
#: servers to every interface, unless clusters are off; off, every node address is 127.0.0.1
RAY_LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@contextlib.contextmanager
def ray_head(env: dict[str, str], num_cpus: int = 2):
    """``ray start --head`` on 127.0.0.1 at a free port; yields its address (``host:port``), its
    temporary folder (sessions, logs) and the environment a client (a sweep) needs to join it.

    The head requires a token (Ray's token authentication), made for it in its folder and named
    by ``RAY_AUTH_TOKEN_PATH``: Ray 2.60 otherwise decides by whether ``~/.ray/auth_token``
    happens to exist, which differs from machine to machine.

    It runs with ``--block`` in a process group of its own, so it is stopped by that id (SIGTERM:
    ``ray start --block`` then ends the processes it started). ``ray stop`` is not used: it ends
    every Ray process on the machine by name, other people's included.
    """
    port = free_port()
    temp = service_dir("st-ray-")
    log = open(temp / "head.log", "w")
    token = temp / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = dict(env, **RAY_LOOPBACK, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
               RAY_AUTH_TOKEN_PATH=str(token))
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
         f"--num-cpus={num_cpus}", f"--temp-dir={temp}", "--include-dashboard=false",
         "--disable-usage-stats", f"--ray-client-server-port={free_port()}",
         f"--dashboard-agent-listen-port={free_port()}", "--block"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=str(REPO))
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in (temp / "head.log").read_text():
            assert head.poll() is None, (temp / "head.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "ray start --head did not come up in 120 s"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", temp, env
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(30)
        deadline = time.monotonic() + 30
        while group_alive(head.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = group_alive(head.pid)
        if left:
            os.killpg(head.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, "Ray processes outlived ray start --block"
