"""Hydra and terminal conventions: search sweeps with an objective and a budget, glob()/range()/
interval() sweeps, ``--cfg`` validation, ``--help``, debug presets, tags, the stdout line and
``--json``, and a job's log file that holds the run's log while libraries stay off the terminal.

Sweep tests run the real CLI, Hydra and Optuna in this process with ``framework.pipeline.run``
replaced by a stand-in that writes an MLflow run with known metrics (no TensorFlow); the end-to-end
ones run the native ensemble (Nengo, no TensorFlow) in a subprocess.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from helpers import REPO, cli, cli_in_process, compose, family, runs
from test_sweeps import fake_run

from framework.config import validate


def fake_search_run(cfg, console=None, tags=None):
    """A run whose spiking error is a known function of the scale, (log10 scale − 2)², degrees,
    and whose mean rate is the scale itself (Hz); objective and budget as the pipeline does them."""
    from framework.objective import objective_value
    from framework.pipeline import RunResult
    from framework.tracking.store import Tracker, resolve_uri

    scale = float(cfg.simulation.scale_firing_rates)
    metrics = {"spiking/angle_error_deg": (np.log10(scale) - 2.0) ** 2,
               "firing/mean_rate_hz": scale}
    tracker = Tracker(resolve_uri(cfg.tracking.uri), cfg.tracking.experiment, "fake", tags=tags)
    value, broken = objective_value(validate(cfg), metrics)
    tracker.metrics({**metrics, "search/objective": value})
    tracker.end("FINISHED")
    return RunResult(tracker.run_id, "FINISHED", metrics, objective=value)


def test_optuna_search_returns_the_objective_and_avoids_the_budget(store, tmp_path, monkeypatch):
    """8 Optuna trials over a log interval: every child logs search/objective; the ones whose
    mean rate breaks the 150 Hz budget score OVER_BUDGET, more the further over; Optuna's best is
    the lowest objective, within the budget, found among the runs."""
    code = cli_in_process(["-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=8",
                           "hydra.sweeper.sampler.seed=3",
                           "simulation.scale_firing_rates=tag(log,interval(10,1000))",
                           "objective=spiking/angle_error_deg",
                           "budget.metric=firing/mean_rate_hz", "budget.max=150",
                           f"tracking.uri={store}", f"hydra.sweep.dir={tmp_path}/sweep"],
                          monkeypatch, fake_search_run)
    assert code == 0
    client, parent, kids = family(store)
    assert parent.info.status == "FINISHED" and len(kids) == 8
    values = [k.data.metrics["search/objective"] for k in kids]
    scales = [float(dict(o.split("=", 1) for o in k.data.tags["spiketune.overrides"].split())
                    ["simulation.scale_firing_rates"]) for k in kids]
    assert all(10 <= s <= 1000 for s in scales)
    from framework.objective import OVER_BUDGET

    for scale, value in zip(scales, values):
        if scale > 150:  # over budget: graded by how far, so a search can find its way back
            assert value == pytest.approx(OVER_BUDGET * (1 + (scale - 150) / 150))
        else:
            assert value == pytest.approx((np.log10(scale) - 2.0) ** 2)
    assert min(scales) < 150 < max(scales)  # both sides of the budget were tried
    best = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(values))
    assert best["best_params"]["simulation.scale_firing_rates"] == pytest.approx(
        scales[int(np.argmin(values))])
    assert best["best_value"] < OVER_BUDGET


def test_glob_and_range_sweeps(store, tmp_path, monkeypatch):
    code = cli_in_process(["-m", "neuron=glob(*lif*)", "seed=range(2,4)",
                           f"tracking.uri={store}", f"hydra.sweep.dir={tmp_path}/sweep"],
                          monkeypatch, fake_run)
    assert code == 0
    _, _, kids = family(store)
    got = sorted(" ".join(o for o in k.data.tags["spiketune.overrides"].split()
                          if not o.startswith("tracking.uri")) for k in kids)
    assert got == sorted(f"neuron={n} seed={s}" for n in ("lif", "lif_rate", "threshold_lif")
                         for s in (2, 3))


@pytest.mark.parametrize("args, line", [
    (["--cfg", "job", "simulation.n_steps=0"], "simulation.n_steps: must be >= 1, got 0"),
    (["-m", "simulation.n_steps=int(interval(0,50))", "hydra/sweeper=optuna"],
     "simulation.n_steps: must be >= 1, got 0"),
    (["-m", "neuron=glob(*lif*)", "--cfg", "job"],
     "--cfg with -m: all 3 jobs' configs are valid; --cfg prints one job's config, so drop -m "
     "and give its values"),
    (["objective=spiking angle"], "objective: 'spiking angle' is not a metric name (e.g. "
                                  "spiking/angle_error_deg)"),
    (["budget.metric=firing/mean_rate_hz", "budget.max=5"],
     "budget.metric: a budget limits an objective; set objective=<metric> too"),
    (["objective=spiking/mse", "budget.max=5"], "budget.metric, budget.max: give both or neither"),
])
def test_refused_in_one_line_before_anything_runs(args, line, tmp_path):
    proc = cli(args, uri=f"sqlite:///{tmp_path}/never.db")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"spiketune: {line}"]
    assert not (tmp_path / "never.db").exists()


def test_cfg_job_prints_a_valid_config():
    proc = cli(["--cfg", "job", "debug=fast_dev"])
    assert proc.returncode == 0, proc.stderr
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["training"]["epochs"] == 1 and cfg["analysis"] == ["firing"]


def test_help_lists_user_groups_without_composing():
    """--help comes from conf/ alone: Hydra is never imported, internal groups are not listed,
    every experiment and debug preset is, with its summary line."""
    code = ("import sys; from framework.app.cli import main; main(['--help']); "
            "print('hydra loaded' if 'hydra' in sys.modules else 'hydra not loaded')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.rstrip().endswith("hydra not loaded")
    assert "schema/" not in out and "tuned" not in out
    for preset in (REPO / "conf" / "experiment").glob("*.yaml"):
        assert f"    {preset.stem} " in out
    assert "neuron: lif, lif_rate, relu, spiking_relu, threshold_lif" in out
    assert "hydra/sweeper" not in out or "optuna" in out
    assert "debug:" in out and "smoke" in out and "fast_dev" in out


@pytest.mark.parametrize("preset", ["smoke", "fast_dev"])
def test_debug_presets_cut_a_run_down_and_keep_it_apart(preset):
    obj = validate(compose([f"debug={preset}"]))
    assert obj.training.epochs == 1 and not obj.training.cache
    assert obj.simulation.max_samples <= 32 and obj.tracking.experiment == "debug"
    # on top of any experiment
    obj = validate(compose([f"debug={preset}", "experiment=digits"]))
    assert obj.dataset.name == "digits" and obj.training.epochs == 1


def test_stdout_line_and_json(store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPIKETUNE_JSON", "0")  # --json sets it in os.environ: restored after
    assert cli_in_process(["seed=2", f"tracking.uri={store}"], monkeypatch, fake_run) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("run_id=") and " status=FINISHED " in out[0]
    run_id = out[0].split()[0].split("=")[1]
    _, found = runs(store)
    assert [r.info.run_id for r in found] == [run_id]
    assert cli_in_process(["--json", "seed=3", f"tracking.uri={store}"], monkeypatch,
                          fake_run) == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert record["status"] == "FINISHED" and record["store"] == store


def test_first_run_on_a_fresh_machine_is_quiet_and_logged(tmp_path):
    """A new HOME (no Nengo decoder cache, no matplotlib font cache): the terminal shows only
    spiketune's lines, no traceback or library log record; the job's log file holds the run's
    lines and the libraries' records; the user's tags are on the run."""
    home = tmp_path / "home"
    home.mkdir()
    run_dir = tmp_path / "job"
    proc = cli(["experiment=threshold_example", "model.n_inputs=5", "simulation.n_steps=200",
                "analysis=[firing]", "tags=[study:thresholds,pilot]", f"hydra.run.dir={run_dir}"],
               uri=f"sqlite:///{tmp_path}/mlflow.db",
               env={"HOME": str(home), "MPLCONFIGDIR": str(home / "mpl")})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not [line for line in proc.stderr.splitlines() if " - " in line and "][" in line]
    assert "nengo.cache" not in proc.stderr and "matplotlib" not in proc.stderr
    log = (run_dir / "cli.log").read_text()
    assert "summary" in log and "FINISHED" in log
    client, (run,) = runs(f"sqlite:///{tmp_path}/mlflow.db", "threshold_example")
    assert run.data.tags["study"] == "thresholds" and run.data.tags["pilot"] == "true"
    assert proc.stdout.startswith(f"run_id={run.info.run_id} status=FINISHED")


def test_an_over_budget_objective_is_graded_and_follows_the_direction():
    """Every trial over budget (what the shipped preset first did: 145-196 Hz against 60 Hz)
    must still rank the trials, the nearest to the budget best; a maximising search gets the
    negated penalty."""
    from framework.objective import OVER_BUDGET, objective_value

    obj = validate(compose(["objective=spiking/angle_error_deg",
                            "budget.metric=firing/mean_rate_hz", "budget.max=60"]))

    def value(rate, err=5.0, maximize=False):
        return objective_value(obj, {"spiking/angle_error_deg": err,
                                     "firing/mean_rate_hz": rate}, maximize)

    assert value(59.0) == (5.0, "") and value(60.0) == (5.0, "")
    over = [value(r)[0] for r in (61.0, 90.0, 196.0)]
    assert over == sorted(over) and over[0] > OVER_BUDGET > 1e3 * 5.0
    assert over[1] == pytest.approx(OVER_BUDGET * 1.5)
    assert value(90.0)[1] == "firing/mean_rate_hz 90 > 60"
    assert value(90.0, maximize=True)[0] == -over[1]
    assert value(float("nan"))[0] > over[-1]  # a NaN rate is no way into the budget
