"""SLURM for real: a one-node cluster (munged, slurmctld, slurmd from Debian's packages, configured
by ``framework.app.slurm_cluster``) runs a ``hydra/launcher=slurm_local`` sweep as one job array,
and every job lands in the PostgreSQL-backed tracking server.

The node offers 1 CPU, so the array's tasks run one after another: the 2-core CI machine runs the
other test process beside it, and each task imports TensorFlow.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
from helpers import REPO, TINY
from helpers.services import BIN, mlflow_server, slurm_cluster, sweep_runs  # noqa: F401

from framework.app import slurm_cluster as sc
from framework.app import sweeps
from framework.errors import EXIT_USER

REAL = [*TINY, "analysis=[firing]", "tracking.log_model=false"]


def test_conf_names_the_node_on_loopback(tmp_path):
    text = sc.slurm_conf(sc.Layout(tmp_path), cpus=3, memory_mb=1500, partition="p1",
                         ctld_port=7001, slurmd_port=7002)
    node = sc.node_name()
    assert f"SlurmctldHost={node}(127.0.0.1)" in text
    assert f"NodeName={node} NodeAddr=127.0.0.1 CPUs=3 RealMemory=1500 " in text
    assert f"PartitionName=p1 Nodes={node} Default=YES" in text
    assert "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny" in text
    assert "SlurmctldPort=7001" in text and "SlurmdPort=7002" in text
    assert f"AuthInfo=socket={tmp_path / 'run' / 'munge.socket'}" in text
    assert "ProctrackType=proctrack/linuxproc" in text and "TaskPlugin=task/none" in text


@pytest.mark.parametrize("args, key", [(["--cpus", "0"], "--cpus"),
                                       (["--ctld-port", "0"], "--ctld-port"),
                                       (["--ctld-port", "7001", "--slurmd-port", "7001"],
                                        "--slurmd-port"),
                                       (["--partition", "a b"], "--partition")])
def test_bad_arguments_exit_2_naming_the_key(tmp_path, args, key):
    proc = subprocess.run([sys.executable, "-m", "framework.app.slurm_cluster", "start", "--dir",
                           str(tmp_path), *args], capture_output=True, text=True, timeout=60,
                          cwd=str(REPO))
    assert proc.returncode == EXIT_USER, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"slurm_cluster: {key}:"), proc.stderr


@pytest.fixture(scope="module")
def cluster():
    with slurm_cluster(cpus=1) as env:
        yield env


@pytest.mark.slow
def test_slurm_array_sweep_lands_in_the_server(cluster, mlflow_server, tmp_path):  # noqa: F811
    """4 jobs submitted by submitit as one array: 4 COMPLETED array tasks in slurmctld, 4
    FINISHED children under one FINISHED parent in the server, nothing else."""
    env = dict(cluster, TF_CPP_MIN_LOG_LEVEL="3", SPIKETUNE_CACHE_DIR=str(tmp_path / "cache"))
    sweep_dir = tmp_path / "sweep"
    started = time.monotonic()
    proc = subprocess.run([str(BIN / "spiketune"), "-m", *REAL, "hydra/launcher=slurm_local",
                           "simulation.n_steps=20,21,22,23", "tracking.experiment=slurm",
                           f"tracking.uri={mlflow_server.url}", f"hydra.sweep.dir={sweep_dir}"],
                          cwd=str(REPO), env=env, capture_output=True, text=True, timeout=1200)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(f"4-job SLURM array sweep: {seconds:.1f} s")

    # submitit made one array of 4 tasks in the partition of the preset
    listing = sorted(str(p.relative_to(sweep_dir)) for p in (sweep_dir / ".submitit").rglob("*"))
    tasks_dirs = [m.groups() for p in (sweep_dir / ".submitit").iterdir()
                  if (m := re.fullmatch(r"(\d+)_(\d+)", p.name))]  # one folder per array task
    array_ids = {a for a, _ in tasks_dirs}
    assert len(array_ids) == 1, listing
    assert sorted(int(t) for _, t in tasks_dirs) == [0, 1, 2, 3], listing
    (array_id,) = array_ids
    scripts = list((sweep_dir / ".submitit").rglob("*submission.sh"))
    assert scripts, listing
    script = scripts[0].read_text()
    assert re.search(r"#SBATCH --array=0-3%\d+", script), script
    assert "#SBATCH --partition=local" in script
    shown = subprocess.run(["scontrol", "-o", "show", "job", array_id], env=cluster,
                           capture_output=True, text=True, timeout=60).stdout.splitlines()
    tasks = {int(re.search(r"ArrayTaskId=(\d+)", ln).group(1)):
             re.search(r"JobState=(\w+)", ln).group(1) for ln in shown}
    assert tasks == {0: "COMPLETED", 1: "COMPLETED", 2: "COMPLETED", 3: "COMPLETED"}, shown

    parents, kids, found = sweep_runs(mlflow_server.url, "slurm")
    assert (len(parents), len(kids), len(found)) == (1, 4, 5)
    (parent,) = parents
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["spiketune.launcher"] == "slurm_local"
    assert (parent.data.metrics["sweep/jobs"], parent.data.metrics["sweep/finished"]) == (4, 4)
    assert {r.info.status for r in kids} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in kids} == {parent.info.run_id}
    assert sorted(int(r.data.params["simulation.n_steps"]) for r in kids) == [20, 21, 22, 23]
    # each job ran in a process of its own on the node, started by slurmd, not by spiketune
    records = sweeps.job_records(sweep_dir)
    assert [r["status"] for r in records] == ["FINISHED"] * 4
    assert len({r["pid"] for r in records}) == 4
    assert {r["host"].split(".")[0] for r in records} == {sc.node_name()}
    assert os.getpid() not in {r["pid"] for r in records}
