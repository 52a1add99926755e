"""``spiketune-server``: a shared MLflow tracking server on PostgreSQL, started by the project.

    spiketune-server start                  # http://127.0.0.1:5000, data in outputs/server/
    spiketune-server start --data /srv/mlflow --port 5001 --workers 4
    spiketune-server status                 # exit 0 when up, 3 when not
    spiketune-server stop

``start`` runs two daemons that outlive the command, with everything under the data folder:

* **PostgreSQL** (the installed ``initdb``/``pg_ctl``, Debian's ``postgresql`` package):
  ``<data>/postgres/`` is its cluster, created on the first start with a role and a database, both
  ``mlflow``; the role's random password is kept in ``<data>/pgpass`` (mode 600, libpq's own
  password-file format). PostgreSQL opens **no TCP port**: it listens on a unix socket inside its
  own folder, which only its owner (and root) can enter, so only this machine's MLflow server
  reaches it. Run as root, PostgreSQL (which refuses to run as root) runs as the ``postgres`` user.
* **``mlflow server``** on ``postgresql+psycopg2://mlflow@/mlflow?host=<data>/postgres``,
  serving the artifacts itself from ``<data>/artifacts/`` (``--artifacts-destination``): clients
  upload and download through HTTP and need no access to the folder. Bound to 127.0.0.1 unless
  ``--host`` says otherwise; it has no authentication, so another interface has to be asked for.

Point runs at it with ``tracking.uri=http://127.0.0.1:5000``. ``stop`` ends the MLflow server
(SIGTERM to its process group, SIGKILL after ``--timeout`` seconds, said when needed) and then
PostgreSQL (``pg_ctl stop -m fast``); the data stays for the next start. ``<data>/server.json``
records what runs (pids, URL); ``<data>/logs/mlflow.log`` and ``<data>/postgres/postgres.log`` are
the two logs.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.error import URLError
from urllib.request import urlopen

from filelock import FileLock

from framework import paths
from framework.daemons import (
    EXIT_NOT_RUNNING,
    MAX_SOCKET_PATH,
    alive,
    group_alive,
    port_free,
    telling_line,
)
from framework.errors import EXIT_INTERNAL, EXIT_USER, UserError

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 5000
ROLE = DATABASE = "mlflow"
PG_PORT = 5432  # only names the socket file (.s.PGSQL.5432): PostgreSQL opens no TCP port


def default_data() -> Path:
    """``outputs/server`` (under ``$SPIKETUNE_OUTPUTS`` when set)."""
    return paths.OUTPUTS / "server"


@dataclass(frozen=True)
class Layout:
    """Where a server's pieces live inside its data folder."""

    data: Path

    @property
    def pgdata(self) -> Path:
        return self.data / "postgres"

    @property
    def artifacts(self) -> Path:
        return self.data / "artifacts"

    @property
    def logs(self) -> Path:
        return self.data / "logs"

    @property
    def pgpass(self) -> Path:
        return self.data / "pgpass"

    @property
    def state(self) -> Path:
        return self.data / "server.json"

    @property
    def lock(self) -> Path:
        return self.data / ".server.lock"

    def backend_uri(self) -> str:
        """The SQLAlchemy URI of the database, through the socket, without the password (libpq
        reads it from ``$PGPASSFILE``, so it never shows in ``ps``). The driver is named:
        SQLAlchemy 2.1's default for ``postgresql://`` is psycopg 3, the environment has psycopg2
        (``psycopg2-binary``, which brings its own libpq)."""
        return (f"postgresql+psycopg2://{ROLE}@/{DATABASE}?host={self.pgdata}&port={PG_PORT}")


# --------------------------------------------------------------------------------- PostgreSQL
@dataclass(frozen=True)
class Postgres:
    """The PostgreSQL programs and the account that runs them.

    Parameters
    ----------
    bin : Path
        Folder holding ``initdb``, ``pg_ctl`` and ``psql`` of one PostgreSQL version.
    user : str
        The operating-system account the cluster runs as (and its superuser's name, so that
        ``peer`` authentication on the socket lets that account in).
    uid, gid : int or None
        Set when that account is not this process's (this process is root).
    """

    bin: Path
    user: str
    uid: int | None = None
    gid: int | None = None

    def run(self, args: list[str], cwd: Path, stdin: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``bin/args[0]`` as the cluster's account; its output is captured."""
        cmd = [str(self.bin / args[0]), *args[1:]]
        return subprocess.run(cmd, cwd=str(cwd), input=stdin, capture_output=True, text=True,
                              timeout=timeout, user=self.uid, group=self.gid,
                              extra_groups=[] if self.uid is not None else None,
                              env=dict(os.environ, LC_ALL="C"))


def find_postgres() -> Postgres:
    """The newest Debian PostgreSQL (``/usr/lib/postgresql/<version>/bin``), else ``pg_ctl`` on
    the PATH; as root, run by the ``postgres`` account that Debian's package creates.

    Raises
    ------
    UserError
        When no PostgreSQL is installed, or as root without a ``postgres`` account.
    """
    import getpass
    import pwd

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    on_path = shutil.which("pg_ctl")
    if candidates:
        folder = candidates[-1].parent
    elif on_path:
        folder = Path(on_path).resolve().parent
    else:
        raise UserError("postgresql: initdb and pg_ctl not found; install PostgreSQL "
                        "(Debian: apt-get install postgresql)")
    for tool in ("initdb", "pg_ctl", "psql"):
        if not (folder / tool).exists():
            raise UserError(f"postgresql: {folder / tool} is missing")
    if os.geteuid() != 0:
        return Postgres(folder, getpass.getuser())
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        raise UserError("postgresql: running as root needs a 'postgres' account to run the "
                        "database (Debian's postgresql package creates it)") from None
    return Postgres(folder, "postgres", account.pw_uid, account.pw_gid)


def _own(path: Path, pg: Postgres) -> None:
    if pg.uid is not None:
        os.chown(path, pg.uid, pg.gid if pg.gid is not None else -1)


def init_cluster(layout: Layout, pg: Postgres) -> bool:
    """Create the PostgreSQL cluster in ``<data>/postgres`` unless it exists; True if created."""
    pgdata = layout.pgdata
    if (pgdata / "PG_VERSION").exists():
        return False
    socket_path = pgdata / f".s.PGSQL.{PG_PORT}"
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        raise UserError(f"--data: {layout.data} is too deep for PostgreSQL's socket "
                        f"({len(str(socket_path))} > {MAX_SOCKET_PATH} bytes); choose a shorter "
                        f"path")
    pgdata.mkdir(mode=0o700, exist_ok=True)
    _own(pgdata, pg)
    if pg.uid is not None:  # the postgres account must be able to walk down to its folder
        probe = subprocess.run(["test", "-w", str(pgdata)], user=pg.uid, group=pg.gid,
                               extra_groups=[], capture_output=True)
        if probe.returncode != 0:
            raise UserError(f"--data: the '{pg.user}' account cannot reach {pgdata} (a folder "
                            f"on the way is private to root); choose a data folder it can reach")
    done = pg.run(["initdb", "-D", str(pgdata), "-U", pg.user, "-E", "UTF8", "--locale=C",
                   "--auth-local=peer", "--auth-host=reject"], cwd=pgdata)
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {telling_line(done.stdout + done.stderr)}")
    with open(pgdata / "postgresql.conf", "a") as conf:
        conf.write(f"""
# spiketune-server: no TCP listener at all; only a unix socket inside this folder, which only its
# owner (and root) can enter, so only the MLflow server on this machine reaches the database
listen_addresses = ''
unix_socket_directories = '{pgdata}'
unix_socket_permissions = 0700
""")
    # the mlflow role logs in with its password; the cluster's own account by peer (no password)
    (pgdata / "pg_hba.conf").write_text(
        "# spiketune-server: sockets only (listen_addresses = '')\n"
        f"local  {DATABASE}  {ROLE}  scram-sha-256\n"
        f"local  all  {pg.user}  peer\n")
    return True


def pg_running(layout: Layout, pg: Postgres) -> bool:
    """Whether the cluster's postmaster is running (``pg_ctl status``)."""
    if not (layout.pgdata / "PG_VERSION").exists():
        return False
    return pg.run(["pg_ctl", "status", "-D", str(layout.pgdata)], cwd=layout.pgdata,
                  timeout=30).returncode == 0


def start_postgres(layout: Layout, pg: Postgres, timeout: float) -> None:
    """Start the cluster and wait until it accepts connections."""
    if pg_running(layout, pg):
        return
    log = layout.pgdata / "postgres.log"
    done = pg.run(["pg_ctl", "start", "-D", str(layout.pgdata), "-l", str(log), "-w", "-t",
                   str(int(timeout))], cwd=layout.pgdata, timeout=timeout + 30)
    if done.returncode != 0:
        tail = log.read_text(errors="replace") if log.exists() else done.stdout + done.stderr
        raise RuntimeError(f"PostgreSQL did not start ({log}): {telling_line(tail)}")


def ensure_database(layout: Layout, pg: Postgres) -> None:
    """The ``mlflow`` role (with the password of ``<data>/pgpass``, made on the first start) and
    its database, created if missing; idempotent."""
    if layout.pgpass.exists():
        password = layout.pgpass.read_text().strip().rsplit(":", 1)[-1]
    else:
        password = secrets.token_hex(24)  # hex: nothing to quote in SQL or in the pgpass line
        fd = os.open(layout.pgpass, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"*:*:{DATABASE}:{ROLE}:{password}\n")
    # on stdin, not the command line, so the password never shows in ps
    sql = (f"SELECT 'CREATE ROLE {ROLE} LOGIN' WHERE NOT EXISTS "
           f"(SELECT FROM pg_roles WHERE rolname = '{ROLE}')\\gexec\n"
           f"ALTER ROLE {ROLE} WITH LOGIN PASSWORD '{password}';\n"
           f"SELECT 'CREATE DATABASE {DATABASE} OWNER {ROLE}' WHERE NOT EXISTS "
           f"(SELECT FROM pg_database WHERE datname = '{DATABASE}')\\gexec\n")
    done = pg.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(layout.pgdata), "-p",
                   str(PG_PORT), "-U", pg.user, "-d", "postgres", "-f", "-"],
                  cwd=layout.pgdata, stdin=sql)
    if done.returncode != 0:
        raise RuntimeError(f"creating the {ROLE} role and database failed: "
                           f"{telling_line(done.stderr + done.stdout)}")


def stop_postgres(layout: Layout, pg: Postgres, timeout: float) -> bool:
    """``pg_ctl stop -m fast`` (ends sessions, then a clean shutdown); True if it was running."""
    if not pg_running(layout, pg):
        return False
    done = pg.run(["pg_ctl", "stop", "-D", str(layout.pgdata), "-m", "fast", "-w", "-t",
                   str(int(timeout))], cwd=layout.pgdata, timeout=timeout + 30)
    if done.returncode != 0:
        raise RuntimeError(f"PostgreSQL did not stop: {telling_line(done.stderr + done.stdout)}")
    return True


# ------------------------------------------------------------------------------ MLflow server
#: MLflow's app with its UI opening on the runs on a first visit (framework/app/mlflow_app.py)
APP = ["--app-name", "spiketune"]


def mlflow_command(layout: Layout, host: str, port: int, workers: int,
                   allowed_hosts: str = "") -> list[str]:
    """The ``mlflow server`` command line (the MLflow of this environment, the client's own
    version, so the database schema and the clients agree)."""
    here = Path(sys.executable).with_name("mlflow")
    exe = [str(here)] if here.exists() else [sys.executable, "-m", "mlflow"]
    cmd = [*exe, "server", "--backend-store-uri", layout.backend_uri(),
           "--artifacts-destination", str(layout.artifacts), "--serve-artifacts",
           "--host", host, "--port", str(port), "--workers", str(workers), *APP]
    return cmd + (["--allowed-hosts", allowed_hosts] if allowed_hosts else [])


def _health(url: str, timeout: float = 2.0) -> bool:
    """Whether the server answers ``GET /health`` with ``OK``."""
    try:
        with urlopen(f"{url}/health", timeout=timeout) as resp:  # noqa: S310 - our own URL
            return bool(resp.status == 200 and resp.read().strip() == b"OK")
    except (URLError, OSError, ValueError):
        return False


def _is_mlflow(pid: int) -> bool:
    """The pid is still an MLflow server (not a reused pid of something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return alive(pid)  # no /proc (macOS): trust the pid file
    return any(b"mlflow" in part for part in cmdline) and b"server" in cmdline


def read_state(layout: Layout) -> dict[str, Any] | None:
    """What ``start`` recorded in ``<data>/server.json``, or None."""
    try:
        return cast(dict[str, Any], json.loads(layout.state.read_text()))
    except (OSError, ValueError):
        return None


def _url(host: str, port: int) -> str:
    shown = LOOPBACK if host in ("0.0.0.0", "") else host  # a wildcard is reached on loopback
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    """One start or stop at a time per data folder."""
    with FileLock(str(layout.lock)):
        yield


def start(data: Path, host: str = LOOPBACK, port: int = DEFAULT_PORT, workers: int = 2,
          timeout: float = 180.0, allowed_hosts: str = "") -> dict[str, Any]:
    """Start PostgreSQL and the MLflow server on ``data`` (both left running).

    Parameters
    ----------
    data : Path
        The data folder: database cluster, artifacts, logs, state (created if missing).
    host : str
        Interface the MLflow server binds (default the loopback).
    port : int
        Its TCP port.
    workers : int
        Its uvicorn worker processes.
    timeout : float
        Seconds to wait for each daemon to come up (the first start migrates the schema).
    allowed_hosts : str
        MLflow's ``--allowed-hosts`` (Host headers it accepts) when serving beyond the loopback.

    Returns
    -------
    dict
        The state written to ``<data>/server.json``: ``url``, ``pid``, ``host``, ``port``,
        ``backend``, ``artifacts``, ``log``; ``already`` True when it was running before.
    """
    layout = _data_folder(data.absolute())
    pg = find_postgres()
    if importlib.util.find_spec("psycopg2") is None:  # the server would die on its first query
        raise UserError("postgresql: the psycopg2 driver is not installed in this environment "
                        "(pip install psycopg2-binary)")
    with _locked(layout):
        state = read_state(layout)
        if state and _is_mlflow(int(state["pid"])) and _health(state["url"]) \
                and pg_running(layout, pg):
            return {**state, "already": True}
        if state:  # a crashed or killed server: end what is left of it before starting anew
            _stop_mlflow(state, timeout=30)
            layout.state.unlink(missing_ok=True)
        if not port_free(host, port):
            raise UserError(f"--port: {host}:{port} is in use (another server?); choose another "
                            f"with --port")
        for folder in (layout.artifacts, layout.logs):
            folder.mkdir(exist_ok=True)
        init_cluster(layout, pg)
        start_postgres(layout, pg, timeout)
        ensure_database(layout, pg)
        proc, state = _spawn_mlflow(layout, host, port, workers, allowed_hosts)
        _wait_healthy(proc, state, layout, timeout)
        return {**state, "already": False}


def _data_folder(data: Path) -> Layout:
    """The layout of ``data`` (absolute), created if missing; refused when it is a file, cannot
    be created or is not writable."""
    if data.exists() and not data.is_dir():
        raise UserError(f"--data: {data} is a file, not a folder")
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as ex:
        raise UserError(f"--data: cannot create {data}: {ex.strerror}") from None
    if not os.access(data, os.W_OK):
        raise UserError(f"--data: {data} is not writable")
    return Layout(data)


def _spawn_mlflow(layout: Layout, host: str, port: int, workers: int,
                  allowed_hosts: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start ``mlflow server`` in a session of its own (it outlives this process) and record it
    in ``server.json``; returns the process and the state written."""
    log_path = layout.logs / "mlflow.log"
    env = dict(os.environ, PGPASSFILE=str(layout.pgpass),
               # the server's job runner (GenAI scorers, trace archival) starts seven more
               # worker processes of ~240 MB each; spiketune runs no server-side jobs
               MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(mlflow_command(layout, host, port, workers, allowed_hosts),
                                cwd=str(layout.data), env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # outlives us; stopped as a group
    state = {"url": _url(host, port), "pid": proc.pid, "host": host, "port": port,
             "workers": workers, "backend": layout.backend_uri(),
             "artifacts": str(layout.artifacts), "log": str(log_path),
             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    layout.state.write_text(json.dumps(state, indent=1))
    return proc, state


def _wait_healthy(proc: subprocess.Popen[bytes], state: dict[str, Any], layout: Layout,
                  timeout: float) -> None:
    """Wait up to ``timeout`` seconds for the server to answer ``/health``; a server that exits
    or does not answer in time is ended, its state removed, and a RuntimeError says so."""
    url, log_path = state["url"], Path(state["log"])
    deadline = time.monotonic() + timeout
    while not _health(url):
        if proc.poll() is not None:
            layout.state.unlink(missing_ok=True)
            raise RuntimeError(f"mlflow server exited with code {proc.returncode} while "
                               f"starting ({log_path}): "
                               f"{telling_line(log_path.read_text(errors='replace'))}")
        if time.monotonic() > deadline:
            _stop_mlflow(state, timeout=30)
            layout.state.unlink(missing_ok=True)
            raise RuntimeError(f"mlflow server did not answer {url}/health within "
                               f"{timeout:.0f} s ({log_path})")
        time.sleep(0.5)


def _stop_mlflow(state: dict[str, Any], timeout: float) -> str:
    """End the MLflow server's process group; ``stopped``, ``killed`` or ``not running``."""
    pid = int(state["pid"])
    if not _is_mlflow(pid) and not group_alive(pid):
        return "not running"
    # the group (pgid = pid: started with start_new_session) holds the mlflow CLI, uvicorn and
    # its workers; the CLI forwards SIGTERM to uvicorn, but a worker can outlive a killed parent
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while group_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while group_alive(pid):
                time.sleep(0.1)
            return "killed"
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when this process started it (the tests)
        time.sleep(0.2)
    return "stopped"


def stop(data: Path, timeout: float = 30.0) -> dict[str, str]:
    """Stop the MLflow server, then PostgreSQL; the data stays.

    Returns
    -------
    dict
        ``mlflow`` and ``postgres``: ``stopped``, ``killed`` (did not end within ``timeout``
        seconds of SIGTERM) or ``not running``.
    """
    layout = Layout(data.absolute())
    if not layout.data.is_dir():
        raise UserError(f"--data: {layout.data} is not a folder")
    pg = find_postgres()
    with _locked(layout):
        state = read_state(layout)
        how = {"mlflow": _stop_mlflow(state, timeout) if state else "not running"}
        layout.state.unlink(missing_ok=True)
        how["postgres"] = "stopped" if stop_postgres(layout, pg, timeout) else "not running"
        return how


def status(data: Path) -> dict[str, str]:
    """What runs on ``data``: ``url``, ``mlflow`` (``up``, ``not answering``, ``not running``),
    ``postgres`` (``up`` or ``not running``)."""
    layout = Layout(data.absolute())
    state = read_state(layout) or {}
    out = {"url": state.get("url", ""), "data": str(layout.data)}
    if not state:
        out["mlflow"] = "not running"
    elif _health(state["url"]):
        out["mlflow"] = "up"
    else:
        out["mlflow"] = "not answering" if _is_mlflow(int(state["pid"])) else "not running"
    created = (layout.pgdata / "PG_VERSION").exists()  # no cluster: no PostgreSQL to ask
    out["postgres"] = "up" if created and pg_running(layout, find_postgres()) else "not running"
    return out


# ------------------------------------------------------------------------------------------ CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spiketune-server", description="A shared MLflow tracking "
                                "server on PostgreSQL, started by the project.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{start,stop,status}")
    for name, text in (("start", "start PostgreSQL and the MLflow server"),
                       ("stop", "stop them (the data stays)"),
                       ("status", "say what runs (exit 0 when up, 3 when not)")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--data", type=Path, default=None,
                       help="data folder (default outputs/server)")
        if name == "start":
            s.add_argument("--host", default=LOOPBACK, help="interface to bind (default "
                           "127.0.0.1; the server has no authentication)")
            s.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default 5000)")
            s.add_argument("--workers", type=int, default=2,
                           help="server worker processes (default 2)")
            s.add_argument("--allowed-hosts", default="",
                           help="Host headers to accept beyond localhost (MLflow's option)")
        if name in ("start", "stop"):
            s.add_argument("--timeout", type=float, default=180.0 if name == "start" else 30.0,
                           help="seconds to wait for a daemon to start or stop")
    return p


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``spiketune-server``."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    data = args.data if args.data is not None else default_data()
    try:
        if args.command == "start":
            if not 0 < args.port < 65536:
                raise UserError(f"--port: must be in 1..65535, got {args.port}")
            if args.workers < 1:
                raise UserError(f"--workers: must be at least 1, got {args.workers}")
            if args.timeout <= 0:
                raise UserError(f"--timeout: must be positive, got {args.timeout}")
            if args.host not in (LOOPBACK, "localhost", "::1"):
                print(f"spiketune-server: warning: serving on {args.host}: anyone who can reach "
                      f"port {args.port} can read and delete runs", file=sys.stderr)
            state = start(data, args.host, args.port, args.workers, args.timeout,
                          args.allowed_hosts)
            what = "already running" if state["already"] else "started"
            print(f"spiketune-server: {what}: MLflow on {state['url']} (PostgreSQL in "
                  f"{Layout(data.absolute()).pgdata}, artifacts in {state['artifacts']})",
                  file=sys.stderr)
            print(f"spiketune-server: use it with tracking.uri={state['url']}; stop it with "
                  f"spiketune-server stop" + (f" --data {data}" if args.data else ""),
                  file=sys.stderr)
            print(state["url"])
        elif args.command == "stop":
            how = stop(data, args.timeout)
            print(f"spiketune-server: mlflow {how['mlflow']}, postgres {how['postgres']}",
                  file=sys.stderr)
        else:
            now = status(data)
            print(f"spiketune-server: {now['url'] or '(no server)'}: mlflow {now['mlflow']}, "
                  f"postgres {now['postgres']} ({now['data']})")
            if now["mlflow"] != "up" or now["postgres"] != "up":
                sys.exit(EXIT_NOT_RUNNING)
    except UserError as ex:
        print(f"spiketune-server: {ex}", file=sys.stderr)
        sys.exit(EXIT_USER)
    except (RuntimeError, OSError, subprocess.SubprocessError) as ex:
        print(f"spiketune-server: {ex}", file=sys.stderr)
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
