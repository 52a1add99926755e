"""experiment=frontier and the seed spread, end to end through the CLI, Hydra, Optuna and MLflow.

The fast tests run them in this process with ``framework.pipeline.run`` replaced by a stand-in
that logs known metrics (no TensorFlow); the slow ones run real TINY NengoDL jobs in a subprocess
and check the parent's pareto.csv and spread.csv against what the children logged.
"""
from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from helpers import TINY, cli, cli_in_process, family

from framework.app.compare import compare
from framework.config import validate
from framework.spread import t_interval


def _artifact(client, run_id: str, name: str, tmp_path) -> pd.DataFrame:
    return pd.read_csv(client.download_artifacts(run_id, name, str(tmp_path / "dl")))


def fake_frontier_run(cfg, console=None, tags=None):
    """Accuracy (log10 scale)/3 and mean rate = scale (Hz) for each trial; params as a run
    logs them; objectives scored as the pipeline does (``objective.score``)."""
    from omegaconf import OmegaConf

    from framework.objective import score
    from framework.pipeline import RunResult
    from framework.progress import Console
    from framework.tracking.store import Tracker, resolve_uri

    obj = validate(cfg)
    scale = float(cfg.simulation.scale_firing_rates)
    metrics = {"spiking/accuracy": math.log10(scale) / 3, "rate/accuracy": 0.95,
               "firing/mean_rate_hz": scale}
    tracker = Tracker(resolve_uri(cfg.tracking.uri), cfg.tracking.experiment, "fake", tags=tags)
    tracker.params({k: str(OmegaConf.select(cfg, k)) for k in (
        "simulation.scale_firing_rates", "simulation.n_steps", "simulation.synapse",
        "conversion.normalize", "conversion.max_rate_hz")})
    tracker.metrics(metrics)
    score(obj, metrics, tracker, console or Console())
    tracker.end("FINISHED")
    return RunResult(tracker.run_id, "FINISHED", metrics)


def test_frontier_search_logs_the_front_of_its_children(store, tmp_path, monkeypatch):
    """6 NSGA-II trials over scale and steps: every child returns (−accuracy, Hz, steps); the
    parent's pareto.csv holds all 6 and its on_front is the front of the children's own logged
    accuracy (maximised), rate and steps, checked here point by point."""
    code = cli_in_process(["-m", "experiment=frontier", "hydra.sweeper.n_trials=6",
                           "hydra.sweeper.sampler.population_size=4",
                           "hydra.sweeper.sampler.seed=5", "tracking.experiment=spiketune",
                           f"tracking.uri={store}", f"hydra.sweep.dir={tmp_path}/sweep"],
                          monkeypatch, fake_frontier_run)
    assert code == 0
    client, parent, kids = family(store)
    assert len(kids) == 6
    for k in kids:  # the objectives each job returned, as it logged them
        assert k.data.metrics["search/objective_0"] == pytest.approx(
            -k.data.metrics["spiking/accuracy"])
        assert k.data.metrics["search/objective_2"] == float(k.data.params["simulation.n_steps"])
    table = _artifact(client, parent.info.run_id, "pareto.csv", tmp_path)
    assert list(table.columns[-4:]) == ["spiking/accuracy", "firing/mean_rate_hz",
                                        "simulation.n_steps", "on_front"]
    points = {k.info.run_id: (k.data.metrics["spiking/accuracy"],
                              k.data.metrics["firing/mean_rate_hz"],
                              float(k.data.params["simulation.n_steps"])) for k in kids}
    for _, row in table.iterrows():
        acc, hz, steps = points[row["run_id"]]
        assert (row["spiking/accuracy"], row["firing/mean_rate_hz"],
                row["simulation.n_steps"]) == pytest.approx((acc, hz, steps))
        beaten = any(a >= acc and h <= hz and s <= steps and (a, h, s) != (acc, hz, steps)
                     for a, h, s in points.values())
        assert bool(row["on_front"]) == (not beaten)
    assert {"pareto.csv", "pareto.png"} <= {a.path for a in
                                             client.list_artifacts(parent.info.run_id)}
    assert parent.data.metrics["pareto/trials"] == 6
    assert parent.data.metrics["pareto/front_size"] == table["on_front"].sum()
    note = parent.data.tags["mlflow.note.content"]
    assert f"**Pareto front**: {table['on_front'].sum()} of 6 trials" in note
    front = note.split("**Pareto front**")[1].split("| run |")[0]
    for _, row in table[table["on_front"]].iterrows():  # the description names each setting
        assert f"n_steps={row['simulation.n_steps']:.3g}" in front
    rows = [line for line in front.splitlines() if "normalize=" in line]
    assert len(rows) == table["on_front"].sum()
    for line in rows:  # ... that it used: data-based normalisation sets each layer's scale
        assert ("scale_firing_rates=" in line) == ("normalize=none" in line), line


@pytest.mark.parametrize("args, line", [
    (["experiment=frontier", "hydra.sweeper.direction=[minimize,minimize]"],
     "hydra.sweeper.direction: 2 direction(s) for 3 objectives ['score', 'firing/mean_rate_hz', "
     "'simulation.n_steps']; give one per objective, in order"),
    (["experiment=frontier", "hydra.sweeper.direction=[maximize,minimize,minimize]"],
     "hydra.sweeper.direction: `score` is the task's score as a loss (accuracy negated), always "
     "minimized; set its direction to minimize"),
    (["hydra/sweeper=optuna", "hydra.sweeper.direction=[minimize,minimize]", "seed=0,1"],
     "hydra.sweeper.direction: 2 directions but no objectives; set objectives=[...] with one "
     "metric per direction"),
    (["experiment=frontier", "objectives=[score,simulation.nsteps]"],
     "objectives[1]: 'simulation.nsteps' is neither `score`, a metric name (firing/mean_rate_hz) "
     "nor a numeric config key (simulation.n_steps)"),
    (["experiment=frontier", "objective=spiking/mse"],
     "objectives: a multi-objective search has no single `objective` or `budget` (its cost is "
     "one of the objectives); drop objective, budget.*"),
])
def test_bad_objectives_are_refused_before_anything_runs(args, line, tmp_path):
    proc = cli(["-m", *args, "hydra.sweeper.n_trials=1"], uri=f"sqlite:///{tmp_path}/never.db")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"spiketune: {line}"
    assert not (tmp_path / "never.db").exists()


def fake_seed_run(cfg, console=None, tags=None):
    """Metrics that differ by seed in known ways."""
    from framework.pipeline import RunResult
    from framework.tracking.store import Tracker, resolve_uri

    s = int(cfg.seed)
    metrics = {"spiking/mse": 0.1 + 0.02 * s, "rate/mse": 0.05 + 0.01 * s * s,
               "firing/mean_rate_hz": 40.0 + 3 * s, "tuning/directional_fraction": 0.5,
               "time/total_s": 1.0 + s}
    tracker = Tracker(resolve_uri(cfg.tracking.uri), cfg.tracking.experiment, "fake", tags=tags)
    tracker.params({"seed": str(s)})
    tracker.metrics(metrics)
    tracker.end("FINISHED")
    return RunResult(tracker.run_id, "FINISHED", metrics)


def test_a_seed_sweep_reports_each_headline_metric_with_its_interval(store, tmp_path,
                                                                     monkeypatch):
    """seed=0,2,3,7: spread.csv, the parent's spread/* metrics and its description hold each
    headline metric's mean and Student t interval over the children's values (time/* is not a
    headline metric); spiketune-compare prints the intervals for the same runs."""
    code = cli_in_process(["-m", "seed=0,2,3,7", f"tracking.uri={store}",
                           f"hydra.sweep.dir={tmp_path}/sweep"], monkeypatch, fake_seed_run)
    assert code == 0
    client, parent, kids = family(store)
    table = _artifact(client, parent.info.run_id, "spread.csv", tmp_path).set_index("metric")
    assert list(table.index) == ["rate/mse", "spiking/mse", "firing/mean_rate_hz",
                                 "tuning/directional_fraction"]
    for metric, row in table.iterrows():
        iv = t_interval([k.data.metrics[metric] for k in kids])
        assert (row["n"], row["mean"], row["ci_low"], row["ci_high"]) == pytest.approx(
            (4, iv.mean, iv.low, iv.high))
        assert parent.data.metrics[f"spread/{metric}/mean"] == pytest.approx(iv.mean)
        assert parent.data.metrics[f"spread/{metric}/ci_high"] == pytest.approx(iv.high)
    # spiking/mse over seeds 0, 2, 3, 7: 0.1, 0.14, 0.16, 0.24: mean 0.16, sd 0.05888,
    # t(0.975, 3) = 3.1824: half width 3.1824 · 0.05888 / 2 = 0.09369
    assert (table.loc["spiking/mse", "ci_low"], table.loc["spiking/mse", "ci_high"]) == \
        pytest.approx((0.16 - 0.09369, 0.16 + 0.09369), abs=1e-5)
    note = parent.data.tags["mlflow.note.content"]
    assert "**Over 4 seeds**: mean [95% Student t interval of the mean]" in note
    assert "| spiking/mse | 4 | 0.16 [0.06631, 0.2537] |" in note
    page = client.download_artifacts(parent.info.run_id, "report.html", str(tmp_path / "r"))
    assert "<h2>Over 4 seeds</h2>" in open(page).read()
    out = io.StringIO()
    comp = compare(store, parent=parent.info.run_id, out=tmp_path / "cmp", plots=False,
                   stream=out)
    assert comp.spread is not None
    text = out.getvalue()
    assert "4 runs differ only in seed" in text
    assert "0.16 [0.06631, 0.2537]" in text
    assert (tmp_path / "cmp" / "spread.csv").exists()


def fake_shared_run(cfg, console=None, tags=None):
    """A loaded model's runs: the same two neurons (gain, bias) every seed; neuron 0's preferred
    direction 350° + 20°·seed, neuron 1's 90° every seed."""
    from framework.pipeline import RunResult
    from framework.tracking.store import Tracker, resolve_uri

    s = int(cfg.seed)
    tracker = Tracker(resolve_uri(cfg.tracking.uri), cfg.tracking.experiment, "fake", tags=tags)
    tracker.params({"seed": str(s)})
    tracker.metrics({"spiking/accuracy": 0.8 + 0.01 * s})
    tracker.artifact_text("layer,neuron,gain,bias,pd_deg\n"
                          f"dense,0,2.0,0.5,{(350 + 20 * s) % 360}\ndense,1,1.5,-0.2,90\n",
                          "neurons.csv")
    tracker.end("FINISHED")
    return RunResult(tracker.run_id, "FINISHED", {})


def test_seeds_that_share_weights_report_each_neurons_pd_spread(store, tmp_path, monkeypatch):
    """Seeds 0 and 1 of one loaded model: neuron 0 at 350° and 10° (circular mean 0°, circular sd
    √(−2 ln cos 10°) = 10.02°), neuron 1 at 90° both times (sd 0)."""
    code = cli_in_process(["-m", "seed=0,1", f"tracking.uri={store}",
                           f"hydra.sweep.dir={tmp_path}/sweep"], monkeypatch, fake_shared_run)
    assert code == 0
    client, parent, _ = family(store)
    table = _artifact(client, parent.info.run_id, "pd_spread.csv", tmp_path)
    assert table["neuron"].tolist() == [0, 1] and table["n"].tolist() == [2, 2]
    assert min(table.loc[0, "pd_mean_deg"], 360 - table.loc[0, "pd_mean_deg"]) == \
        pytest.approx(0, abs=1e-6)
    assert table["pd_sd_deg"].tolist() == pytest.approx([10.025, 0.0], abs=1e-3)
    assert parent.data.metrics["spread/pd_sd_deg_median"] == pytest.approx(10.025 / 2, abs=1e-3)
    assert "median 5.01° over 2 neurons" in parent.data.tags["mlflow.note.content"]


def test_a_sweep_of_more_than_seed_has_no_spread(store, tmp_path, monkeypatch):
    code = cli_in_process(["-m", "seed=0,2", "simulation.n_steps=10,20", f"tracking.uri={store}",
                           f"hydra.sweep.dir={tmp_path}/sweep"], monkeypatch, fake_seed_run)
    assert code == 0
    client, parent, _ = family(store)
    assert "spread.csv" not in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert not any(k.startswith("spread/") for k in parent.data.metrics)


# --------------------------------------------------------------------------------- real jobs
REAL = [*TINY, "analysis=[firing,tuning]"]


@pytest.mark.slow
def test_real_seed_sweep_spread_matches_the_children(uri, tmp_path):
    """Three TINY NengoDL runs (seeds 0-2): the parent's spread.csv is the Student t interval of
    the children's own logged metrics."""
    proc = cli(["-m", *REAL, "seed=range(3)", f"hydra.sweep.dir={tmp_path}/sweep"], uri,
               env={"SPIKETUNE_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parent, kids = family(uri)
    assert len(kids) == 3
    table = _artifact(client, parent.info.run_id, "spread.csv", tmp_path).set_index("metric")
    assert {"rate/angle_error_deg", "spiking/angle_error_deg", "firing/mean_rate_hz",
            "tuning/directional_fraction"} <= set(table.index)
    for metric, row in table.iterrows():
        values = [k.data.metrics[metric] for k in kids]
        iv = t_interval(values)
        assert row["n"] == 3 and row["mean"] == pytest.approx(np.mean(values))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((iv.low, iv.high))
        assert row["ci_low"] <= min(values) or row["sd"] == 0


@pytest.mark.slow
def test_real_frontier_sweep_logs_its_front(uri, tmp_path):
    """Three TINY trials of experiment=frontier (TINY fixes n_steps at 20: the other four settings
    are searched): pareto.csv and pareto.png on the parent, and the front is that of the
    children's logged angle error, mean rate and steps."""
    proc = cli(["-m", "experiment=frontier", *REAL, "analysis=[firing]", "training.epochs=2",
                "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.population_size=3",
                "tracking.experiment=spiketune", f"hydra.sweep.dir={tmp_path}/sweep"], uri,
               env={"SPIKETUNE_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parent, kids = family(uri)
    assert len(kids) == 3
    logged = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto.csv", "pareto.png"} <= logged
    table = _artifact(client, parent.info.run_id, "pareto.csv", tmp_path).set_index("run_id")
    points = {k.info.run_id: (k.data.metrics["spiking/angle_error_deg"],
                              k.data.metrics["firing/mean_rate_hz"],
                              float(k.data.params["simulation.n_steps"])) for k in kids}
    for run_id, p in points.items():
        beaten = any(all(q[i] <= p[i] for i in range(3)) and q != p for q in points.values())
        assert bool(table.loc[run_id, "on_front"]) == (not beaten)
        assert table.loc[run_id, "spiking/angle_error_deg"] == pytest.approx(p[0])
