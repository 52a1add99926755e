"""spiketune-compare on a sweep written straight into MLflow (no TensorFlow), and spiketune-ui."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from framework.app import compare, ui
from framework.errors import EXIT_USER

NEURONS = ["lif", "relu"]
STEPS = [10, 20, 40]


def spiking_mse(neuron: str, steps: int) -> float:
    """The made-up metric of the fake sweep: falls with n_steps, relu better than lif."""
    return (1.0 if neuron == "lif" else 0.5) * 10.0 / steps


def tuning_table(scale: float) -> str:
    rows = [{"layer": "hidden0", "neuron": n, "direction_deg": d,
             "mean_rate_hz": scale * (20 + 10 * np.cos(np.deg2rad(d - 45 * n))), "n_trials": 3}
            for n in range(3) for d in range(0, 360, 45)]
    return pd.DataFrame(rows).to_csv(index=False)


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory):
    """``(uri, parent_run_id)``: a sweep of neuron × n_steps (6 FINISHED children, one FAILED),
    plus one unrelated run in the same experiment."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("cmp") / "mlflow.db"
    uri = f"sqlite:///{path}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("spiketune", artifact_location=(path.parent / "art").as_uri())
    parent = client.create_run(exp, run_name="sweep-x", tags={"spiketune.sweep": "parent"})
    pid = parent.info.run_id
    for neuron in NEURONS:
        for steps in STEPS:
            run = client.create_run(exp, run_name=f"{neuron}-{steps}", tags={
                "mlflow.parentRunId": pid, "spiketune.sweep": "child"})
            rid = run.info.run_id
            params = {"neuron.name": neuron, "simulation.n_steps": str(steps),
                      "simulation.synapse": "0.01", "seed": "0"}
            metrics = {"spiking/mse": spiking_mse(neuron, steps), "rate/mse": 0.1,
                       "firing/mean_rate_hz": 2.0 * steps, "time/total_s": 1.0}
            client.log_batch(rid, params=[Param(k, v) for k, v in params.items()],
                             metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()])
            client.log_text(rid, tuning_table(steps / 10), "tuning_rates.csv")
            client.set_terminated(rid, "FINISHED")
    bad = client.create_run(exp, run_name="broken", tags={"mlflow.parentRunId": pid,
                                                          "spiketune.sweep": "child"})
    client.log_batch(bad.info.run_id, params=[Param("neuron.name", "lif"),
                                              Param("simulation.n_steps", "80"),
                                              Param("simulation.synapse", "0.01"),
                                              Param("seed", "0")])
    client.set_terminated(bad.info.run_id, "FAILED")
    client.set_terminated(pid, "FINISHED")
    other = client.create_run(exp, run_name="single")
    client.log_batch(other.info.run_id, params=[Param("neuron.name", "lif")],
                     metrics=[Metric("spiking/accuracy", 0.9, 0, 0)])
    client.set_terminated(other.info.run_id, "FINISHED")
    return uri, pid


def test_compare_a_sweep(sweep_store, tmp_path):
    uri, pid = sweep_store
    comp = compare.compare(uri, parent=pid, out=tmp_path / "out", echo=False)
    assert comp.params == ["neuron.name", "simulation.n_steps"]  # synapse and seed are shared
    assert comp.numeric == ["simulation.n_steps"]
    assert comp.metrics == ["spiking/mse", "rate/mse", "firing/mean_rate_hz"]
    assert list(comp.table().columns) == ["run", "run_name", "status", "neuron.name",
                                          "simulation.n_steps", "spiking/mse", "rate/mse",
                                          "firing/mean_rate_hz"]
    assert comp.table()["run"].str.len().eq(8).all()
    csv = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert len(csv) == 7 and csv["run_id"].str.len().eq(32).all()
    assert list(csv["status"]).count("FAILED") == 1
    ok = csv[csv["status"] == "FINISHED"]
    for _, row in ok.iterrows():
        assert row["spiking/mse"] == pytest.approx(
            spiking_mse(row["neuron.name"], int(row["simulation.n_steps"])))
    assert "time/total_s" in csv.columns  # every metric goes to the CSV
    # by default one figure per swept number (spiking and rate error, firing rate), not every
    # metric against every param; --metrics asks for those
    plots = {p.name for p in comp.plots}
    assert plots == {"simulation.n_steps.png", "tradeoff.png", "tuning_overlay.png"}
    for p in comp.plots:
        assert p.stat().st_size > 5000 and p.read_bytes()[:4] == b"\x89PNG"
    chosen = compare.compare(uri, parent=pid, out=tmp_path / "chosen", echo=False,
                             metrics=["spiking/mse", "time/total_s"])
    assert {p.name for p in chosen.plots} >= {"spiking-mse_vs_simulation.n_steps.png",
                                              "time-total_s_vs_simulation.n_steps.png"}


def test_labels_have_units_and_leave_out_what_a_group_lacks():
    assert compare.label("spiking/angle_error_deg") == "spiking angle error (°)"
    assert compare.label("simulation.synapse") == "synapse time constant (s)"
    assert compare.label("tuning/hidden0/pd_drift_deg") == "tuning/hidden0/pd_drift (°)"
    frame = pd.DataFrame({"neuron.name": ["lif", "lif", "relu", "relu"],
                          "neuron.tau_rc": ["0.02", "0.02", None, None],
                          "simulation.n_steps": [10.0, 20.0, 10.0, 20.0], "m": [1.0, 2, 3, 4]})
    lines = compare.curves(frame, "m", "simulation.n_steps", ["neuron.name", "neuron.tau_rc"])
    assert set(lines) == {"neuron=lif, tau_rc=0.02", "neuron=relu"}


def test_drawing_warns_nothing(sweep_store, tmp_path, recwarn):
    uri, pid = sweep_store
    compare.compare(uri, parent=pid, out=tmp_path / "out", echo=False)
    assert not [w for w in recwarn if "layout" in str(w.message).lower()], \
        [str(w.message) for w in recwarn]


def test_curves_one_line_per_category_mean_and_spread():
    frame = pd.DataFrame({
        "neuron.name": ["lif", "lif", "lif", "lif", "relu", "relu"],
        "simulation.n_steps": [10.0, 10.0, 20.0, 20.0, 10.0, 20.0],
        "simulation.synapse": [None, 0.01, None, 0.01, None, None],
        "m": [1.0, 3.0, 0.5, 0.7, 2.0, np.nan]})
    lines = compare.curves(frame, "m", "simulation.n_steps", ["neuron.name"])
    assert set(lines) == {"neuron=lif", "neuron=relu"}
    lif = lines["neuron=lif"]
    assert list(lif["x"]) == [10.0, 20.0]
    assert list(lif["mean"]) == pytest.approx([2.0, 0.6])  # averaged over synapse
    assert (list(lif["min"]), list(lif["max"]), list(lif["n"])) == ([1.0, 0.5], [3.0, 0.7], [2, 2])
    assert list(lines["neuron=relu"]["x"]) == [10.0]  # the NaN metric is left out
    by_synapse = compare.curves(frame, "m", "simulation.synapse", [])["all"]
    assert list(by_synapse["x"]) == [0.0, 0.01]  # None plotted at 0
    assert list(by_synapse["mean"]) == pytest.approx([(1.0 + 0.5 + 2.0) / 3, (3.0 + 0.7) / 2])


def test_differing_params():
    params = [{"a": "1", "b": "x", "c": "None", "d": "True"},
              {"a": "1", "b": "y", "c": "0.01", "d": "False"},
              {"a": "1", "b": "y", "c": "0.02"}]
    diff, numeric = compare.differing(params)
    assert diff == ["b", "c", "d"]
    assert numeric == ["c"]


def test_experiment_and_filter(sweep_store, tmp_path, capsys):
    uri, pid = sweep_store
    comp = compare.compare(uri, experiment="spiketune", out=tmp_path / "all", plots=False)
    assert len(comp.frame) == 8  # 7 children + 1 single run; the parent is left out
    assert "spiking/accuracy" in comp.metrics
    comp = compare.compare(uri, parent=pid[:10], filter_string="params.neuron.name = 'relu'",
                           metrics=["spiking/mse"], out=tmp_path / "relu", plots=False)
    assert sorted(comp.frame["simulation.n_steps"]) == STEPS
    assert comp.metrics == ["spiking/mse"]
    printed = capsys.readouterr().out
    assert "relu" in printed and "3 runs; compare.csv" in printed


def test_default_out_dir():
    assert compare.default_out(None, "0123456789abcdef", "").name == "parent-01234567"
    assert compare.default_out("spiketune", None, "").name == "spiketune"
    assert compare.default_out("a b", None, "x").name.startswith("a-b-")


@pytest.mark.parametrize("args, start", [
    (["--experiment", "nope"], "--experiment: no experiment 'nope'"),
    (["--parent", "0" * 32], "--parent: no run"),
    (["--parent", "zz"], "--parent: no sweep parent run starts with 'zz'"),
    (["--experiment", "spiketune", "--parent", "x"], "argument --parent: not allowed with"),
    (["--filter", "params.x ~~ 3"], "--filter: "),
    (["--metrics", "spiking/nope"], "--metrics: no selected run has metric 'spiking/nope'"),
    (["--filter", "params.neuron.name = 'none'"], "no runs to compare"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_arguments_exit_2_with_one_line(sweep_store, tmp_path, capsys, args, start):
    uri, _ = sweep_store
    with pytest.raises(SystemExit) as ex:
        compare.main([*args, "--uri", uri, "--out", str(tmp_path / "o")])
    assert ex.value.code == EXIT_USER
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"spiketune-compare: {start}"), err


def test_missing_store_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as ex:
        compare.main(["--uri", f"sqlite:///{tmp_path / 'none.db'}"])
    assert ex.value.code == EXIT_USER
    assert "--uri: no MLflow store at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()  # not created empty


# ---------------------------------------------------------------------------------------- ui
def test_ui_runs_mlflow_on_loopback(monkeypatch):
    calls = []
    monkeypatch.setattr(ui.os, "execv", lambda exe, argv: calls.append((exe, argv)))
    ui.main([])
    exe, argv = calls[0]
    assert Path(exe).name in ("mlflow", "python", "python3") and argv[0] == exe
    i = argv.index("ui")
    from framework.paths import default_uri

    # MLflow's app with the first-visit script (framework/app/mlflow_app.py)
    assert argv[i:] == ["ui", "--backend-store-uri", default_uri(), "--host", "127.0.0.1",
                        "--port", "5000", "--app-name", "spiketune"]
    ui.main(["--port", "5055", "--host", "0.0.0.0", "--uri", "sqlite:////tmp/x.db"])
    assert calls[1][1][i:] == ["ui", "--backend-store-uri", "sqlite:////tmp/x.db", "--host",
                               "0.0.0.0", "--port", "5055", "--app-name", "spiketune"]


def test_ui_bad_port(capsys):
    with pytest.raises(SystemExit) as ex:
        ui.main(["--port", "70000"])
    assert ex.value.code == EXIT_USER
    assert capsys.readouterr().err.startswith("spiketune-ui: --port")


def test_console_scripts_are_installed():
    import sys

    bin_dir = Path(sys.executable).parent
    for name in ("spiketune-compare", "spiketune-ui"):
        assert (bin_dir / name).exists() or shutil.which(name), name


def test_overlay_labels_leave_out_params_a_run_does_not_have():
    """relu has no tau_rc: its label names what it has, never ``tau_rc=None``."""
    params = ["neuron.name", "neuron.tau_rc", "simulation.synapse", "simulation.n_steps"]
    relu = pd.Series({"run_id": "3d04e541aa", "neuron.name": "relu", "neuron.tau_rc": None,
                      "simulation.synapse": float("nan"), "simulation.n_steps": 50.0})
    lif = pd.Series({"run_id": "d12b34caff", "neuron.name": "lif", "neuron.tau_rc": 0.02,
                     "simulation.synapse": 0.01, "simulation.n_steps": 100.0})
    assert compare._run_label(relu, params) == "3d04e541 neuron=relu n_steps=50"
    assert compare._run_label(lif, params) == "d12b34ca neuron=lif tau_rc=0.02 synapse=0.01"
