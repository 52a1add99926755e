"""Ray against a cluster that already runs: ``ray start --head`` on 127.0.0.1, then a sweep with
``hydra/launcher=ray_cluster hydra.launcher.ray.init.address=127.0.0.1:<port>`` whose jobs run in
the head's worker processes and land in the tracking server.

(``hydra/launcher=ray_local`` with an address does not work: its ``init.num_cpus``, meant for the
private instance, and the 75 MB ``object_store_memory`` that hydra-ray-launcher adds where the key
is missing make Ray 2.60 refuse to join an existing cluster; ``ray_cluster`` has neither.)
"""
from __future__ import annotations

import os
import re
import subprocess

import pytest
from helpers import REPO, TINY
from helpers.services import (  # noqa: F401 - mlflow_server: the fixture
    BIN,
    RAY_LOOPBACK,
    mlflow_server,
    ray_head,
    sweep_runs,
)

from framework.app import sweeps

REAL = [*TINY, "analysis=[firing]", "tracking.log_model=false"]


def test_ray_cluster_preset_joins_and_never_starts_its_own():
    """No num_cpus (Ray refuses it with an address); address ``auto``, never null (a null
    address would quietly start a private instance instead of failing)."""
    from helpers import compose
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from framework.app.cli import CONF

    compose([])  # registers the schemas and resolvers
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["hydra/launcher=ray_cluster"],
                            return_hydra_config=True)
    init = cfg.hydra.launcher.ray.init
    assert init.address == "auto" and "num_cpus" not in init
    # the key present, null: hydra-ray-launcher's setdefault of 75 MB would make Ray refuse
    assert "object_store_memory" in init and init.object_store_memory is None
    assert cfg.hydra.launcher.ray.remote.num_cpus == 1


@pytest.mark.slow
def test_sweep_on_an_existing_ray_head(mlflow_server, tmp_path):  # noqa: F811
    # the head's worker processes run the jobs, with the head's environment
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", SPIKETUNE_CACHE_DIR=str(tmp_path / "cache"),
               **RAY_LOOPBACK)
    with ray_head(env, num_cpus=2) as (address, temp, env):
        # one job at a time (2 CPUs per task): each worker imports TensorFlow, on 2 cores
        proc = subprocess.run([str(BIN / "spiketune"), "-m", *REAL, "hydra/launcher=ray_cluster",
                               f"hydra.launcher.ray.init.address={address}",
                               "hydra.launcher.ray.remote.num_cpus=2",
                               "simulation.n_steps=20,30", "tracking.experiment=ray_cluster",
                               f"tracking.uri={mlflow_server.url}",
                               f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                              cwd=str(REPO), env=env, capture_output=True, text=True,
                              timeout=900)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]
        assert f"Connecting to existing Ray cluster at address: {address}" in out
        assert "Started a local Ray instance" not in out
        # the jobs ran in worker processes of the head's session (their logs are in its folder)
        records = sweeps.job_records(tmp_path / "sweep")
        assert [r["status"] for r in records] == ["FINISHED", "FINISHED"]
        logs = [p.name for p in temp.glob("session_*/logs/worker-*.out")]
        for pid in {r["pid"] for r in records}:
            assert f"(_run_job pid={pid})" in out
            assert any(re.search(rf"-{pid}\.out$", name) for name in logs), (pid, logs)
    parents, kids, found = sweep_runs(mlflow_server.url, "ray_cluster")
    assert (len(parents), len(kids), len(found)) == (1, 2, 3)
    assert {r.info.status for r in found} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in kids} == {parents[0].info.run_id}
    assert sorted(int(r.data.params["simulation.n_steps"]) for r in kids) == [20, 30]
