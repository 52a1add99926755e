"""The shared tracking server: ``spiketune-server`` (PostgreSQL + ``mlflow server``) under real
sweeps.

The slow tests start a real server on 127.0.0.1 (:func:`helpers.services.mlflow_server`) and run
real TINY jobs into it: three concurrent 8-job sweeps that must land every run, a job killed with
SIGKILL, ``spiketune-compare --uri http://...``, artifacts and the model fetched back over HTTP,
and a restart that keeps the runs. The fast ones check the command's refusals.
"""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import REPO, TINY
from helpers.services import BIN, mlflow_server, service_dir, sweep_runs  # noqa: F401

from framework.errors import EXIT_USER

#: real jobs: TINY, only the firing analysis, no model (the sweeps test counting, not models)
REAL = [*TINY, "analysis=[firing]", "tracking.log_model=false"]
#: 8 jobs that share one training (the cache key ignores n_steps and synapse)
EIGHT = ["simulation.n_steps=20,21,22,23", "simulation.synapse=0.005,0.01"]


def spiketune(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """``spiketune args`` in the background, stderr to ``log``."""
    full = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env)
    return subprocess.Popen([str(BIN / "spiketune"), *args], cwd=str(REPO), env=full,
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"))


def tcp_listeners() -> dict[str, tuple[str, int]]:
    """Listening TCP sockets of this machine: socket inode -> (IPv4 address, port), from
    /proc/net/tcp (state 0A is LISTEN; addresses are little-endian hex)."""
    import socket
    import struct

    out = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":
            host, port = fields[1].split(":")
            out[fields[9]] = (socket.inet_ntoa(struct.pack("<I", int(host, 16))), int(port, 16))
    for line in Path("/proc/net/tcp6").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":
            out[fields[9]] = ("ipv6", int(fields[1].split(":")[1], 16))
    return out


def sockets_of(pid: int) -> set[str]:
    """The socket inodes process ``pid`` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


# ------------------------------------------------------------------------------ fast: refusals
@pytest.mark.parametrize("args, key", [
    (["start", "--port", "70000"], "--port"),
    (["start", "--workers", "0"], "--workers"),
    (["start", "--timeout", "-1"], "--timeout")])
def test_bad_arguments_exit_2_naming_the_key(tmp_path, args, key):
    proc = subprocess.run([str(BIN / "spiketune-server"), *args, "--data", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_USER
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"spiketune-server: {key}:"), proc.stderr


def test_data_that_is_a_file_exits_2(tmp_path):
    (tmp_path / "f").write_text("")
    proc = subprocess.run([str(BIN / "spiketune-server"), "start", "--data", str(tmp_path / "f")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_USER
    assert proc.stderr.strip() == f"spiketune-server: --data: {tmp_path / 'f'} is a file, not a " \
                                  f"folder"


def test_status_of_nothing_is_3(tmp_path):
    proc = subprocess.run([str(BIN / "spiketune-server"), "status", "--data", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "mlflow not running, postgres not running" in proc.stdout


def test_command_line_keeps_the_password_out():
    """The database password is in a 600 file read by libpq, never on a command line (ps)."""
    from framework.app.server import Layout, mlflow_command

    layout = Layout(Path("/srv/st"))
    cmd = mlflow_command(layout, "127.0.0.1", 5000, 2)
    uri = cmd[cmd.index("--backend-store-uri") + 1]
    assert uri == "postgresql+psycopg2://mlflow@/mlflow?host=/srv/st/postgres&port=5432"
    assert cmd[cmd.index("--artifacts-destination") + 1] == "/srv/st/artifacts"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and "--serve-artifacts" in cmd


# ---------------------------------------------------------------------------- slow: the server
@pytest.mark.slow
def test_server_layout(mlflow_server):  # noqa: F811 - the imported fixture
    """PostgreSQL listens on no TCP port, only its private socket; the password file is 600."""
    data = mlflow_server.data
    conf = (data / "postgres" / "postgresql.conf").read_text()
    assert "listen_addresses = ''" in conf
    assert oct((data / "pgpass").stat().st_mode & 0o777) == "0o600"
    state = json.loads((data / "server.json").read_text())
    assert state["host"] == "127.0.0.1" and state["url"] == mlflow_server.url
    listeners = tcp_listeners()
    postmaster = int((data / "postgres" / "postmaster.pid").read_text().split()[0])
    assert not sockets_of(postmaster) & set(listeners), "PostgreSQL listens on TCP"
    mine = [addr for addr, port in listeners.values() if port == mlflow_server.port]
    assert mine and set(mine) == {"127.0.0.1"}, mine


@pytest.fixture(scope="module")
def three_sweeps(mlflow_server):  # noqa: F811
    """Three 8-job sweeps started at once by three ``spiketune -m`` processes (basic launcher),
    all into the server, one experiment, one training cache; returns the sweeps' runs."""
    base = service_dir("st-sweeps-")
    env = {"SPIKETUNE_CACHE_DIR": str(base / "cache")}
    started = time.monotonic()
    procs = [spiketune(["-m", *REAL, *EIGHT, "hydra.callbacks.sweep.compare=false",
                        "tracking.experiment=three_sweeps", f"tracking.uri={mlflow_server.url}",
                        f"hydra.sweep.dir={base / f'sweep{i}'}"], env, base / f"stderr{i}.txt")
             for i in range(3)]
    codes = [p.wait(900) for p in procs]
    seconds = time.monotonic() - started
    logs = [(base / f"stderr{i}.txt").read_text() for i in range(3)]
    assert codes == [0, 0, 0], [log[-3000:] for log in logs]
    print(f"three concurrent 8-job sweeps into the server: {seconds:.1f} s")
    yield sweep_runs(mlflow_server.url, "three_sweeps")
    import shutil

    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_three_concurrent_sweeps_lose_nothing(three_sweeps):
    """3 parents, 24 FINISHED children, nothing else; and the same job gives the same numbers
    in every sweep (one cached training, deterministic simulation), so no run was mixed up."""
    parents, kids, found = three_sweeps
    assert (len(parents), len(kids), len(found)) == (3, 24, 27)
    assert {r.info.status for r in found} == {"FINISHED"}, \
        [(r.info.status, r.data.tags.get("error")) for r in found]
    by_job: dict[tuple[str, str], list[float]] = {}
    for p in parents:
        mine = [r for r in kids if r.data.tags["mlflow.parentRunId"] == p.info.run_id]
        assert sorted(int(r.data.tags["spiketune.job"]) for r in mine) == list(range(8))
        assert (p.data.metrics["sweep/jobs"], p.data.metrics["sweep/finished"],
                p.data.metrics["sweep/failed"]) == (8, 8, 0)
        for r in mine:
            key = (r.data.params["simulation.n_steps"], r.data.params["simulation.synapse"])
            assert f"simulation.n_steps={key[0]}" in r.data.tags["spiketune.overrides"]
            by_job.setdefault(key, []).append(r.data.metrics["spiking/mse"])
    assert len(by_job) == 8 and all(len(v) == 3 for v in by_job.values())
    for key, values in by_job.items():
        assert max(values) - min(values) <= 1e-9 * max(1.0, abs(values[0])), (key, values)
    # and the jobs do differ: n_steps and synapse change the spiking error
    assert len({round(v[0], 9) for v in by_job.values()}) > 1
    hits = [r.data.tags.get("spiketune.training_cache") for r in kids]
    assert hits.count("miss") == 1 and hits.count("hit") == 23, hits


@pytest.mark.slow
def test_compare_reads_a_sweep_from_the_server(three_sweeps, mlflow_server, tmp_path):  # noqa: F811
    parents, children, _ = three_sweeps
    parent = parents[0]
    kids = {r.info.run_id: r for r in children
            if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    proc = subprocess.run([str(BIN / "spiketune-compare"), "--parent", parent.info.run_id[:10],
                           "--uri", mlflow_server.url, "--no-plots", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    assert "8 runs; compare.csv" in proc.stdout
    rows = list(csv.DictReader(open(tmp_path / "compare.csv")))
    assert {row["run_id"] for row in rows} == set(kids)
    for row in rows:
        run = kids[row["run_id"]]
        assert row["status"] == "FINISHED"
        assert float(row["spiking/mse"]) == pytest.approx(run.data.metrics["spiking/mse"],
                                                          rel=1e-12)
        assert float(row["firing/mean_rate_hz"]) == pytest.approx(
            run.data.metrics["firing/mean_rate_hz"], rel=1e-12)


@pytest.mark.slow
def test_artifacts_and_model_download_through_the_server(mlflow_server, tmp_path):  # noqa: F811
    """A run's neurons.csv, config.yaml, plots and model come back over HTTP, and the server
    stored them in its own artifacts folder (the client never sees that folder)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    env = {"SPIKETUNE_CACHE_DIR": str(tmp_path / "cache")}
    proc = spiketune([*TINY, "analysis=[firing]", "tracking.plots=true",
                      "tracking.experiment=artifacts", f"tracking.uri={mlflow_server.url}"],
                     env, tmp_path / "stderr.txt")
    assert proc.wait(600) == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    (run,) = sweep_runs(mlflow_server.url, "artifacts")[2]
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
    client = MlflowClient(tracking_uri=mlflow_server.url)
    rid = run.info.run_id
    got = Path(client.download_artifacts(rid, "", str(tmp_path / "got")))
    neurons = list(csv.DictReader(io.StringIO((got / "neurons.csv").read_text())))
    assert len(neurons) == 16  # model.hidden=[16]: one analysed layer of 16 neurons
    assert {"layer", "neuron", "gain", "bias", "threshold", "x_intercept",
            "mean_rate_hz"} <= set(neurons[0])
    rates = [float(n["mean_rate_hz"]) for n in neurons]
    assert sum(rates) / len(rates) == pytest.approx(run.data.metrics["firing/mean_rate_hz"],
                                                    rel=1e-6)
    assert max(rates) == pytest.approx(run.data.metrics["firing/max_rate_hz"], rel=1e-6)
    config = yaml.safe_load((got / "config.yaml").read_text())
    assert config["model"]["hidden"] == [16] and config["tracking"]["uri"] == mlflow_server.url
    pngs = sorted((got / "plots").glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    stored = mlflow_server.data / "artifacts" / run.info.experiment_id / rid / "artifacts"
    assert (stored / "neurons.csv").read_bytes() == (got / "neurons.csv").read_bytes()
    # the model, logged through the server: its files come back and describe a pyfunc model
    assert run.data.tags["spiketune.model"].startswith("runs:/"), \
        run.data.tags["spiketune.model"]  # "not logged: <why>" otherwise
    model_id = run.data.tags["spiketune.model_id"]
    logged = client.get_logged_model(model_id)
    assert logged.source_run_id == rid and logged.artifact_location.startswith("mlflow-artifacts:")
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=logged.artifact_location,
                                                     tracking_uri=mlflow_server.url,
                                                     dst_path=str(tmp_path / "model")))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert "python_function" in mlmodel["flavors"], mlmodel["flavors"]
    assert mlmodel["model_id"] == model_id and mlmodel["run_id"] == rid
    stored_model = next((mlflow_server.data / "artifacts").rglob(f"{model_id}/**/MLmodel"))
    assert stored_model.read_bytes() == (local / "MLmodel").read_bytes()


@pytest.mark.slow
def test_a_password_in_the_tracking_uri_is_recorded_nowhere(mlflow_server, tmp_path):  # noqa: F811
    """A run straight on the server's PostgreSQL database, its real password in tracking.uri:
    the run works, and the password is in none of the terminal output, the run's params, tags
    and artifacts (config.yaml, the model), Hydra's saved configs or the job's log."""
    from mlflow.tracking import MlflowClient

    from framework.app.server import DATABASE, PG_PORT, ROLE, Layout

    layout = Layout(mlflow_server.data)
    password = layout.pgpass.read_text().strip().rsplit(":", 1)[-1]
    assert len(password) >= 16
    uri = (f"postgresql+psycopg2://{ROLE}:{password}@/{DATABASE}?host={layout.pgdata}"
           f"&port={PG_PORT}")
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PGPASSFILE="/nonexistent")  # the URI's own
    proc = subprocess.run([str(BIN / "spiketune"), *TINY, "analysis=[firing]",  # quoted: '=' in
                           "tracking.experiment=secrets", f"tracking.uri='{uri}'",  # the query
                           f"paths.outputs={out}", f"paths.cache={tmp_path / 'cache'}"],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert password not in proc.stdout + proc.stderr
    # paths.cache: its entry is there (beside the entry's lock file)
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 1
    assert f"store=postgresql+psycopg2://{ROLE}:***@/" in proc.stdout
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("secrets").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["tracking.uri"].startswith(f"postgresql+psycopg2://{ROLE}:***@/")
    recorded = [*run.data.params.values(), *run.data.tags.values()]
    assert not [v for v in recorded if password in v]
    got = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "got")))
    files = [p for p in got.rglob("*") if p.is_file()]
    assert (got / "config.yaml") in files
    # the model's files (with the config that rebuilds the spiking network) are under the logged
    # model's own location, not the run's
    model = client.get_logged_model(run.data.tags["spiketune.model_id"])
    files += [p for p in Path(model.artifact_location.removeprefix("file://")).rglob("*")
              if p.is_file()]
    assert any(p.name == "MLmodel" for p in files)
    saved = [p for p in out.rglob("*") if p.is_file() and p.suffix in (".yaml", ".log")]
    assert any(p.name == "overrides.yaml" for p in saved) and any(p.suffix == ".log" for p in saved)
    leaks = [p for p in files + saved if password.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert "***" in next(p for p in saved if p.name == "overrides.yaml").read_text()


@pytest.mark.slow
def test_sigkilled_job_leaves_its_run_unfinished_and_the_server_healthy(mlflow_server,  # noqa: F811
                                                                        tmp_path):
    """SIGKILL (no handler runs) while a job trains: its run and the parent stay RUNNING, never
    FINISHED; the server still answers, and the next run into the same experiment lands."""
    from mlflow.tracking import MlflowClient

    env = {"SPIKETUNE_CACHE_DIR": str(tmp_path / "cache")}
    log = tmp_path / "stderr.txt"
    proc = spiketune(["-m", *REAL, "training.epochs=500", "seed=0,1",
                      "tracking.experiment=sigkill", f"tracking.uri={mlflow_server.url}",
                      f"hydra.sweep.dir={tmp_path / 'sweep'}"], env, log)
    deadline = time.monotonic() + 300
    while "train    [" not in log.read_text():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "job 0 never started training"
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL
    parents, kids, found = sweep_runs(mlflow_server.url, "sigkill")
    assert (len(parents), len(kids)) == (1, 1)  # job 1 never started
    assert [r.info.status for r in found] == ["RUNNING", "RUNNING"]
    assert kids[0].info.end_time is None and kids[0].data.params["training.epochs"] == "500"
    status = subprocess.run([str(BIN / "spiketune-server"), "status", "--data",
                             str(mlflow_server.data)], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "mlflow up, postgres up" in status.stdout, status.stdout
    # the killed client left no lock behind: a new run is written and read back at once
    client = MlflowClient(tracking_uri=mlflow_server.url)
    exp = client.get_experiment_by_name("sigkill")
    run = client.create_run(exp.experiment_id, run_name="after")
    client.log_metric(run.info.run_id, "x", 1.5)
    client.set_terminated(run.info.run_id, "FINISHED")
    again = client.get_run(run.info.run_id)
    assert (again.info.status, again.data.metrics["x"]) == ("FINISHED", 1.5)


@pytest.mark.slow
def test_restart_keeps_the_runs(mlflow_server):  # noqa: F811
    """stop leaves no process; start on the same data serves the same runs (and run ids)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.url)
    exp = client.create_experiment("restart")
    run = client.create_run(exp, run_name="before")
    client.log_metric(run.info.run_id, "y", 2.25)
    client.set_terminated(run.info.run_id, "FINISHED")
    before = {r.info.run_id for e in client.search_experiments()
              for r in client.search_runs([e.experiment_id], max_results=1000)}
    mlflow_server.stop()
    mlflow_server.start()
    after = {r.info.run_id for e in client.search_experiments()
             for r in client.search_runs([e.experiment_id], max_results=1000)}
    assert after == before and run.info.run_id in after
    assert client.get_run(run.info.run_id).data.metrics["y"] == 2.25


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-m", "", "-p", "no:xdist"]))
