"""Sweeps: one parent MLflow run, a child per job, counts, exit codes, parallel launchers.

The fast tests run the real CLI and Hydra in this process with ``framework.pipeline.run`` replaced
by a stand-in that only writes an MLflow run (no TensorFlow), so the callback, job tags, counting
and exit codes are checked in seconds. The slow ones run real TINY jobs through each launcher.
"""
from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

import pytest
from helpers import TINY, cli, cli_in_process, family, runs

from framework.app import sweeps
from framework.errors import EXIT_INTERRUPTED, EXIT_USER, UserError

#: real jobs: TINY, and only the firing analysis (what is under test is the sweep, not the plugins)
REAL = [*TINY, "analysis=[firing]"]


def fake_run(cfg, console=None, tags=None):
    """A stand-in pipeline: one MLflow run; seed 1 fails (user error), seed 7 is 'interrupted'
    with its run left RUNNING, as a worker killed mid-job leaves it."""
    from framework.pipeline import RunResult
    from framework.report import run_name
    from framework.tracking.store import Tracker, resolve_uri

    tracker = Tracker(resolve_uri(cfg.tracking.uri), cfg.tracking.experiment,
                      run_name(cfg, tags), tags=tags)
    tracker.metrics({"spiking/mse": 0.1 * (cfg.seed + 1), "firing/mean_rate_hz": 10.0 * cfg.seed})
    if cfg.seed == 1:
        tracker.end("FAILED", "dataset.path: no such file")
        raise UserError("dataset.path: no such file")
    if cfg.seed == 7:
        raise KeyboardInterrupt
    tracker.end("FINISHED")
    return RunResult(tracker.run_id, "FINISHED", {})


def run_cli(args: list[str], monkeypatch) -> int:
    """``spiketune args`` in this process with :func:`fake_run` as the pipeline."""
    return cli_in_process(args, monkeypatch, fake_run)


def test_parent_and_children(store, tmp_path, monkeypatch, capsys):
    code = run_cli(["-m", "seed=0,2,3", f"tracking.uri={store}",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}"], monkeypatch)
    assert code == 0
    _, parent, kids = family(store)
    assert parent.info.status == "FINISHED"
    # named by what the sweep varies, the children by what each job changed
    assert parent.info.run_name == "sweep seed (3 jobs)"
    assert [r.info.run_name for r in kids] == ["seed=0", "seed=2", "seed=3"]
    assert [r.data.tags["mlflow.source.type"] for r in [parent, *kids]] == \
        ["LOCAL", "JOB", "JOB", "JOB"]
    assert {r.data.tags["mlflow.source.name"] for r in kids} == {"spiketune"}
    assert "git_commit" not in parent.data.tags  # the dropped duplicate of the commit tag
    # the description: what was swept, how it went, each child's headline metric (seed 2: 0.3)
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("**sweep seed (3 jobs)**: 3 jobs, 3 finished, 0 failed.")
    assert "Swept: `seed=0,2,3`" in note
    assert "| run | verdict | spiking/mse | firing/mean_rate_hz |" in note
    assert "Best setting by" not in note  # seeds are repeats: the best of them is luck
    assert "so none is best; their spread is the finding." in note
    assert "| seed=2 | FINISHED | 0.3 | 20 |" in note
    # the links printed at the end open the children in the runs table, and the parent
    err = capsys.readouterr().err
    eid, pid = parent.info.experiment_id, parent.info.run_id
    assert (f"[sweep]   sweep runs  http://127.0.0.1:5000/#/experiments/{eid}/runs?workflowType="
            f"machine_learning&searchFilter=tags.%60mlflow.parentRunId%60%20%3D%20%27{pid}%27"
            f"&orderByKey=tags.%60mlflow.runName%60&orderByAsc=true\n") in err
    assert (f"[sweep]   parent run  http://127.0.0.1:5000/#/experiments/{eid}/runs/{pid}"
            f"?workflowType=machine_learning\n") in err
    assert parent.data.tags["spiketune.overrides"].startswith("seed=0,2,3")
    assert parent.data.params["sweep.seed"] == "0,2,3"
    assert (parent.data.metrics["sweep/jobs"], parent.data.metrics["sweep/finished"],
            parent.data.metrics["sweep/failed"]) == (3, 3, 0)
    assert [r.data.tags["spiketune.job"] for r in kids] == ["0", "1", "2"]
    assert [r.data.tags["spiketune.overrides"].split()[0] for r in kids] == \
        ["seed=0", "seed=2", "seed=3"]
    assert {r.data.tags["spiketune.sweep"] for r in kids} == {"child"}
    assert {r.info.status for r in kids} == {"FINISHED"}
    state = sweeps.read_state(tmp_path / "sweep")
    assert state["parent_run_id"] == parent.info.run_id
    records = sweeps.job_records(tmp_path / "sweep")
    assert [(r["num"], r["status"]) for r in records] == [(0, "FINISHED"), (1, "FINISHED"),
                                                          (2, "FINISHED")]
    assert [r["run_id"] for r in records] == [r.info.run_id for r in kids]
    # the comparison (3 runs differing in seed) was logged to the parent
    client = family(store)[0]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "compare")}
    assert "compare/compare.csv" in logged
    assert sweeps.last_outcome().jobs == 3


def test_names_follow_what_the_jobs_changed(store, tmp_path, monkeypatch):
    code = run_cli(["-m", "neuron=lif,relu", "simulation.n_steps=30,60", "training.epochs=3",
                    f"tracking.uri={store}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                    "hydra.callbacks.sweep.compare=false"], monkeypatch)
    assert code == 0
    _, parent, kids = family(store)
    assert parent.info.run_name == "sweep neuron×n_steps (4 jobs)"
    # a group's choice by its value, a key by its last component; training.epochs (the same in
    # every job) names none of them
    assert [r.info.run_name for r in kids] == ["lif steps=30", "lif steps=60",
                                               "relu steps=30", "relu steps=60"]


def test_tracking_run_name_still_wins(store, tmp_path, monkeypatch):
    code = run_cli(["-m", "seed=0,2", "tracking.run_name=mine", f"tracking.uri={store}",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}",
                    "hydra.callbacks.sweep.compare=false"], monkeypatch)
    assert code == 0
    _, parent, kids = family(store)
    assert [r.info.run_name for r in [parent, *kids]] == ["mine", "mine", "mine"]


def test_short_names_and_labels():
    assert sweeps.short_names(["simulation.n_steps", "neuron", "analyses.tuning.alpha",
                               "training.alpha"]) == {
        "simulation.n_steps": "n_steps", "neuron": "neuron",
        "analyses.tuning.alpha": "tuning.alpha", "training.alpha": "training.alpha"}
    groups = {"neuron", "dataset", "model"}
    # the swept values, under short keys; what every job was given names none of them
    assert sweeps.job_label(["training.epochs=3", "neuron=lif", "simulation.n_steps=50"],
                            ["neuron", "simulation.n_steps"], groups) == "lif steps=50"
    # swept keys in the order the sweep gave them; a search sweeper's long draws shortened
    assert sweeps.job_label(["simulation.scale_firing_rates=137.29384710293", "neuron=lif"],
                            ["neuron", "simulation.scale_firing_rates"], groups) == \
        "lif scale=137.294"
    # a sweep over the firing-rate scale: siblings differ in the name column's first 20 characters
    names = [sweeps.job_label(["neuron=lif", f"simulation.scale_firing_rates={s}",
                               "simulation.n_steps=400"], ["simulation.scale_firing_rates"], groups)
             for s in (10, 20, 50, 100)]
    assert names[1] == "scale=20"
    assert len({n[:20] for n in names}) == 4, names
    assert sweeps.job_label(["+tags=[a]", "seed=4"], [], groups) == "tags=[a] seed=4"
    assert sweeps.job_label([], [], groups) == ""
    # a frontier trial: the search drew a scale and a percentile target it did not use
    frontier = ["simulation.scale_firing_rates", "simulation.n_steps", "conversion.normalize",
                "conversion.max_rate_hz", "conversion.mean_rate_hz"]
    trial = ["simulation.scale_firing_rates=64.66", "simulation.n_steps=136",
             "conversion.normalize=mean_rate", "conversion.max_rate_hz=96.7",
             "conversion.mean_rate_hz=107.2"]
    assert sweeps.job_label(trial, frontier, groups) == \
        "steps=136 normalize=mean_rate mean_rate_hz=107.2"
    # a swept target with the normalisation set elsewhere (a preset) is not judged unused
    assert sweeps.job_label(["conversion.max_rate_hz=96.7"], ["conversion.max_rate_hz"],
                            groups) == "max_rate_hz=96.7"


def test_job_count_and_parent_label():
    from helpers import compose
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from framework.app.cli import CONF

    compose([])
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["experiment=conversion_sweep"],
                            return_hydra_config=True)
    OmegaConf.set_struct(cfg, False)
    cfg.hydra.runtime.choices = {"experiment": "conversion_sweep", "neuron": "lif"}
    cfg.hydra.overrides.task = ["experiment=conversion_sweep", "simulation.n_steps=40,80"]
    assert sweeps.count_jobs(cfg) == 2 * 3 * 3
    assert sweeps.parent_label(cfg, 18) == \
        "sweep conversion_sweep: n_steps×scale_firing_rates×synapse (18 jobs)"
    cfg.hydra.overrides.task = ["neuron=glob(l*)"]
    cfg.hydra.sweeper.params = {}
    assert sweeps.count_jobs(cfg) is None  # only the sweeper can expand glob()
    cfg.hydra.runtime.choices = {"neuron": "lif"}
    assert sweeps.parent_label(cfg, None) == "sweep neuron"


def test_failed_job_goes_on_and_exits_2(store, tmp_path, monkeypatch, capsys):
    code = run_cli(["-m", "seed=0,1,2", f"tracking.uri={store}",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.callbacks.sweep.compare=false"],
                   monkeypatch)
    assert code == EXIT_USER
    err = capsys.readouterr().err
    assert "spiketune: 1 of 3 sweep jobs failed" in err
    assert "Traceback" not in err
    _, parent, kids = family(store)
    assert [r.info.status for r in kids] == ["FINISHED", "FAILED", "FINISHED"]  # went on after 1
    assert kids[1].data.tags["error"] == "dataset.path: no such file"
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["sweep/finished"] == 2
    assert parent.data.metrics["sweep/failed"] == 1
    assert parent.data.tags["error"] == "1 of 3 jobs failed"


def test_every_job_failed_ends_parent_failed(store, tmp_path, monkeypatch):
    code = run_cli(["-m", "seed=1,1", f"tracking.uri={store}",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.callbacks.sweep.compare=false"],
                   monkeypatch)
    assert code == EXIT_USER
    _, parent, kids = family(store)
    assert parent.info.status == "FAILED"
    assert (parent.data.metrics["sweep/jobs"], parent.data.metrics["sweep/failed"]) == (2, 2)


def test_interrupted_sweep_ends_killed(store, tmp_path, monkeypatch):
    code = run_cli(["-m", "seed=0,7,2", f"tracking.uri={store}",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}"], monkeypatch)
    assert code == EXIT_INTERRUPTED
    _, parent, kids = family(store)
    assert parent.info.status == "KILLED"
    assert len(kids) == 2  # job 2 never started
    assert [r.info.status for r in kids] == ["FINISHED", "KILLED"]  # the RUNNING one ended KILLED
    assert kids[1].data.tags["error"].startswith("interrupted")
    assert parent.data.metrics["sweep/finished"] == 1


def test_sweeping_the_store_is_refused(store, tmp_path, monkeypatch, capsys):
    code = run_cli(["-m", "seed=0", "tracking.experiment=a,b", f"tracking.uri={store}",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}"], monkeypatch)
    assert code == EXIT_USER
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("spiketune: tracking.experiment: a sweep logs to one store")
    assert runs(store)[1] == []


@pytest.mark.parametrize("override, key", [("tracking.ui_url=localhost:5000", "tracking.ui_url"),
                                           ("tracking.register=lab:net", "tracking.register")])
def test_bad_tracking_value_stops_the_sweep_before_any_run(override, key, store, tmp_path,
                                                             monkeypatch, capsys):
    code = run_cli(["-m", "seed=0,2", override, f"tracking.uri={store}",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}"], monkeypatch)
    assert code == EXIT_USER
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"spiketune: {key}: ")
    assert runs(store)[1] == []


def test_swept_keys_include_sweeper_params():
    from helpers import compose
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from framework.app.cli import CONF

    compose([])  # registers the schemas and resolvers
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["experiment=conversion_sweep", "seed=3"],
                            return_hydra_config=True)
    OmegaConf.set_struct(cfg, False)
    cfg.hydra.overrides.task = ["experiment=conversion_sweep", "simulation.n_steps=40,80"]
    varied = sweeps.swept(cfg)
    # the command line wins over the preset's hydra.sweeper.params for the same key
    assert varied == {"simulation.n_steps": "40,80", "simulation.scale_firing_rates": "50,100,250",
                      "simulation.synapse": "null,0.005,0.02"}


def _log_same_datasets(uri, barrier, rounds, use_retry, out):
    """One 'worker': each round, at the same moment as the other, log dataset ``ds<round>``."""
    from types import SimpleNamespace

    import numpy as np
    from mlflow.entities import Dataset, DatasetInput

    from framework.tracking.store import Tracker

    errors = 0
    for i in range(rounds):
        tracker = Tracker(uri, "spiketune", f"r{i}")
        data = SimpleNamespace(name=f"ds{i}", digest=f"digest{i}", source="mem", task="regression",
                               n_outputs=2, x_train=np.zeros((4, 2)), x_test=np.zeros((2, 2)))
        barrier.wait()
        if use_retry:
            tracker.dataset(data)
        else:
            try:
                tracker.client.log_inputs(tracker.run_id, datasets=[DatasetInput(Dataset(
                    name=data.name, digest=data.digest, source_type="local", source="{}"))])
            except Exception:  # noqa: BLE001 - counting the collisions
                errors += 1
        tracker.end("FINISHED")
    out.put(errors)


@pytest.mark.parametrize("use_retry", [True, False])
def test_parallel_log_inputs_of_one_dataset(store, use_retry):
    """The CI failure in miniature: two processes log the same new dataset at the same moment,
    20 times. With retries every run gets its input; without, sqlite's UNIQUE constraint bites
    (the control shows the race is real)."""
    import multiprocessing as mp

    from framework.tracking.store import open_store

    rounds = 20
    open_store(store)  # the store exists before the workers, as in a sweep
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_log_same_datasets, args=(store, barrier, rounds, use_retry, out))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    errors = out.get(timeout=5) + out.get(timeout=5)
    client, found = runs(store)
    with_input = [r for r in found if r.inputs.dataset_inputs]
    if use_retry:
        assert [p.exitcode for p in procs] == [0, 0]
        assert errors == 0 and len(found) == 2 * rounds and len(with_input) == 2 * rounds
        assert {r.inputs.dataset_inputs[0].dataset.digest for r in with_input} == \
            {f"digest{i}" for i in range(rounds)}
    else:
        assert errors > 0, "no collision without retries: the control did not race"


# --------------------------------------------------------------------------------- real jobs
def check_sweeps(uri: str, n_sweeps: int, n_jobs: int) -> None:
    client, found = runs(uri)
    parents = [r for r in found if r.data.tags.get("spiketune.sweep") == "parent"]
    assert len(parents) == n_sweeps
    kids = [r for r in found if r.data.tags.get("spiketune.sweep") == "child"]
    assert len(found) == n_sweeps * (n_jobs + 1), "runs outside the sweeps"
    assert [r.info.status for r in kids] == ["FINISHED"] * (n_sweeps * n_jobs), \
        [(r.info.status, r.data.tags.get("error")) for r in kids]
    for p in parents:
        mine = [r for r in kids if r.data.tags["mlflow.parentRunId"] == p.info.run_id]
        assert sorted(int(r.data.tags["spiketune.job"]) for r in mine) == list(range(n_jobs))
        assert p.info.status == "FINISHED"
        assert client.get_run(p.info.run_id).data.metrics["sweep/finished"] == n_jobs


@pytest.mark.slow
def test_basic_launcher_real_jobs(uri, tmp_path):
    """Two TINY jobs in one process; the second diverges (a run-time failure) → exit 2."""
    proc = cli(["-m", *REAL, "training.learning_rate=0.01,1e8",
                f"hydra.sweep.dir={tmp_path / 'sweep'}"], uri,
               env={"SPIKETUNE_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == EXIT_USER, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("spiketune: 1 of 2 sweep jobs failed")
    client, found = runs(uri)
    parent = next(r for r in found if r.data.tags.get("spiketune.sweep") == "parent")
    kids = sorted((r for r in found if r.data.tags.get("spiketune.sweep") == "child"),
                  key=lambda r: r.data.tags["spiketune.job"])
    assert [r.info.status for r in kids] == ["FINISHED", "FAILED"]
    assert "diverged" in kids[1].data.tags["error"]
    assert kids[0].data.metrics["rate/mse"] < 100
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED"
    assert (parent.data.metrics["sweep/finished"], parent.data.metrics["sweep/failed"]) == (1, 1)


@pytest.mark.slow
def test_joblib_three_sweeps_of_eight_lose_nothing(uri, tmp_path):
    """The CI failure: 2 joblib workers logging the same dataset at once. 3 × 8 jobs → 24
    FINISHED children under 3 parents, and nothing else."""
    for i in range(3):
        proc = cli(["-m", *REAL, "hydra/launcher=parallel", "simulation.n_steps=20,21,22,23",
                    "simulation.synapse=0.005,0.01", "hydra.callbacks.sweep.compare=false",
                    f"hydra.sweep.dir={tmp_path / f'sweep{i}'}"], uri,
                   env={"SPIKETUNE_CACHE_DIR": str(tmp_path / "cache")})
        assert proc.returncode == 0, proc.stderr[-3000:]
    check_sweeps(uri, 3, 8)


@pytest.mark.slow
def test_submitit_local_sweep(uri, tmp_path):
    proc = cli(["-m", *REAL, "hydra/launcher=local", "simulation.n_steps=20,30",
                f"hydra.sweep.dir={tmp_path / 'sweep'}"], uri,
               env={"SPIKETUNE_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_sweeps(uri, 1, 2)
    records = sweeps.job_records(tmp_path / "sweep")
    assert [r["status"] for r in records] == ["FINISHED", "FINISHED"]
    assert len({r["pid"] for r in records}) == 2  # each job in its own process


@pytest.mark.slow
def test_ray_local_sweep(uri, tmp_path):
    """Hydra's Ray launcher on a private local Ray instance: the jobs run as Ray tasks (their
    lines come back prefixed by Ray's worker tag) and land as children of one parent."""
    proc = cli(["-m", *REAL, "hydra/launcher=ray_local", "simulation.n_steps=20,30",
                f"hydra.sweep.dir={tmp_path / 'sweep'}"], uri,
               env={"SPIKETUNE_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(_run_job pid=" in proc.stdout + proc.stderr
    check_sweeps(uri, 1, 2)
    records = sweeps.job_records(tmp_path / "sweep")
    assert [r["status"] for r in records] == ["FINISHED", "FINISHED"]


@pytest.mark.slow
def test_sigterm_mid_sweep_ends_parent_and_child_killed(uri, tmp_path):
    """SIGTERM while job 0 trains: exit 130, the parent and job 0's run KILLED, job 1 never ran."""
    import os
    import subprocess
    import time

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", SPIKETUNE_CACHE_DIR=str(tmp_path / "cache"))
    log = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "framework", "-m", *REAL, "training.epochs=200",
                             "seed=0,1", f"tracking.uri={uri}",
                             f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                            cwd=str(Path(__file__).resolve().parents[1]), env=env,
                            stderr=log, stdout=subprocess.DEVNULL)
    deadline = time.time() + 300
    while "train    [" not in (tmp_path / "stderr.txt").read_text() and time.time() < deadline:
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == EXIT_INTERRUPTED, (tmp_path / "stderr.txt").read_text()[-3000:]
    _, parent, kids = family(uri)
    assert parent.info.status == "KILLED"
    assert parent.data.tags["error"] == "interrupted by SIGTERM"
    assert [r.info.status for r in kids] == ["KILLED"]


# ------------------------------------------------------------------------- concurrent sweeps
#: ``python -c FAKE_MAIN <args>``: the CLI in its own process with a stand-in pipeline (one MLflow
#: run per job, held open ``$FAKE_JOB_S`` seconds), and Hydra's clock stopped at one second: sweeps
#: started together then share ``${now:}``, as two started in the same second do
FAKE_MAIN = """
import os, sys, time
from datetime import datetime

import hydra.core.utils

class Stopped(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2030, 1, 2, 3, 4, 5)

hydra.core.utils.datetime = Stopped  # what Hydra's ${now:} resolver reads

import framework.pipeline
from framework.pipeline import RunResult
from framework.report import run_name
from framework.tracking.store import Tracker, resolve_uri

def fake(cfg, console=None, tags=None):
    tracker = Tracker(resolve_uri(cfg.tracking.uri), cfg.tracking.experiment,
                      run_name(cfg, tags), tags=tags)
    time.sleep(float(os.environ.get("FAKE_JOB_S", "0")))
    gate, until = os.environ.get("FAKE_GATE"), time.monotonic() + 600
    while gate and not os.path.exists(gate) and time.monotonic() < until:
        time.sleep(0.05)  # the test creates the gate file when this job may end
    tracker.end("FINISHED")
    return RunResult(tracker.run_id, "FINISHED", {})

framework.pipeline.run = fake
from framework.app.cli import main
main(sys.argv[1:])
"""


def start_fake(args: list[str], tmp_path: Path, name: str, job_s: float = 1.0,
               gate: Path | None = None):
    """``spiketune args`` with the stand-in pipeline in a subprocess; stderr to ``<name>.txt``.
    With ``gate``, each job holds its run open until that file exists (not for a time)."""
    import os
    import subprocess

    log = open(tmp_path / f"{name}.txt", "w")  # noqa: SIM115 - closed by finish_fake
    env = dict(os.environ, FAKE_JOB_S=str(job_s), FAKE_GATE=str(gate or ""))
    proc = subprocess.Popen([sys.executable, "-c", FAKE_MAIN, *args], cwd=str(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=log, text=True, env=env)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def finish_fake(proc, tmp_path: Path, name: str) -> tuple[int, str]:
    code = proc.wait(300)
    proc.log.close()
    return code, (tmp_path / f"{name}.txt").read_text()


@pytest.mark.parametrize("n_sweeps", [2, 3])
def test_sweeps_started_together_each_get_their_own_folder_and_parent(n_sweeps, store,
                                                                        tmp_path):
    """N sweeps of 2 jobs started at once on one store, in the same second (Hydra's clock is
    stopped), with the default hydra.sweep.dir: N folders, N parents, 2N FINISHED children each
    under its own parent, every sweep exit 0. Before the launch id, they shared one folder: the
    second overwrote parent.json, children landed under the wrong parent, exits were 2."""
    import json

    out = tmp_path / "out"
    args = ["-m", "seed=0,2", f"tracking.uri={store}", f"paths.outputs={out}",
            "hydra.callbacks.sweep.compare=false"]
    procs = [start_fake(args, tmp_path, f"sweep{i}") for i in range(n_sweeps)]
    ended = [finish_fake(p, tmp_path, f"sweep{i}") for i, p in enumerate(procs)]
    assert [code for code, _ in ended] == [0] * n_sweeps, "\n".join(e[-2000:] for _, e in ended)
    check_sweeps(store, n_sweeps, 2)
    client, found = runs(store)
    parents = [r for r in found if r.data.tags.get("spiketune.sweep") == "parent"]
    folders = {Path(p.data.tags["spiketune.sweep_dir"]) for p in parents}
    assert len(folders) == n_sweeps
    for folder in folders:  # <outputs>/multirun/<date>/<time>-<launch id>
        assert folder.parent == out / "multirun" / "2030-01-02"
        assert re.fullmatch(r"03-04-05-[0-9a-f]{6}", folder.name), folder.name
    for parent in parents:
        folder = Path(parent.data.tags["spiketune.sweep_dir"])
        assert json.loads((folder / ".spiketune" / "parent.json").read_text())[
            "parent_run_id"] == parent.info.run_id
        mine = {r.info.run_id for r in found
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
        records = sweeps.job_records(folder)
        assert [r["status"] for r in records] == ["FINISHED", "FINISHED"]
        assert {r["run_id"] for r in records} == mine


def test_a_sweep_dir_in_use_is_refused(store, tmp_path):
    """Two sweeps given the same hydra.sweep.dir at once: the second is refused with one line
    (exit 2) before it writes anything; the first lands whole (1 parent, 2 FINISHED children)."""
    folder = tmp_path / "sweep"
    args = ["-m", "seed=0,2", f"tracking.uri={store}", f"hydra.sweep.dir={folder}",
            "hydra.callbacks.sweep.compare=false"]
    gate = tmp_path / "first-may-end"  # the first sweep's jobs wait for it: no race with time
    first = start_fake(args, tmp_path, "first", job_s=0.0, gate=gate)
    try:
        deadline = time.monotonic() + 120
        while sweeps.read_state(folder) is None:  # the first holds the folder
            assert first.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "first.txt").read_text()
            time.sleep(0.1)
        code, err = finish_fake(start_fake(args, tmp_path, "second"), tmp_path, "second")
        assert first.poll() is None, "the first sweep ended before the second was refused"
        assert code == EXIT_USER, err
        assert err.strip().splitlines()[-1].startswith(
            f"spiketune: hydra.sweep.dir: {folder} is in use by a sweep running now"), err
        assert "Traceback" not in err
    finally:
        gate.touch()  # the first sweep's jobs end now (also when an assertion above failed)
    code, err = finish_fake(first, tmp_path, "first")
    assert code == 0, err[-3000:]
    _, parent, kids = family(store)
    assert [r.info.status for r in kids] == ["FINISHED", "FINISHED"]
    assert parent.info.status == "FINISHED"
