"""``report.html``: every run (failed ones too) and every sweep parent carries one, the CLI prints
its link, and what it says is the run's own record: verdict, headline metrics, figures, overrides.

Real runs in a real MLflow store (TINY, a few seconds each); the sweep's children are written by a
stand-in pipeline (tests/test_sweeps.py's ``fake_run``), which is what the parent's report reads.
"""
from __future__ import annotations

import base64
import json
import re
from datetime import datetime

import pytest
from helpers import TINY, cli_in_process, compose, family, runs

from framework.errors import UserError
from framework.pipeline import run
from framework.progress import Console


def report_of(client, run_id: str) -> str:
    """The run's ``report.html`` as logged."""
    path = client.download_artifacts(run_id, "report.html")
    with open(path, encoding="utf-8") as f:
        return f.read()


def embedded_pngs(page: str) -> list[bytes]:
    """The figures embedded in ``page``, decoded."""
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_a_run_reports_its_verdict_headline_figures_and_overrides(store, capsys):
    overrides = [*[o for o in TINY if o != "tracking.plots=false"], "training.epochs=3",
                 "simulation.scale_firing_rates=3"]
    res = run(compose([*overrides, f"tracking.uri={store}"]), console=Console())
    client, [r] = runs(store)
    page = report_of(client, res.run_id)
    assert page.startswith("<!DOCTYPE html>") and r.info.run_name in page
    word = r.data.tags["spiketune.health"]
    assert f"Verdict: {word}" in page
    for check in (k.removeprefix("spiketune.health.") for k in r.data.tags
                  if k.startswith("spiketune.health.")):
        assert f"<td>{check}</td>" in page
    # the headline metrics, as logged, at 4 significant digits
    value = r.data.metrics["spiking/angle_error_deg"]
    assert f'<td>spiking/angle_error_deg</td><td class="num">{value:.4g}</td>' in page
    # the answer where the eye lands: a one-line result tag, the description's headline table
    assert r.data.tags["spiketune.result"] == (
        f"spiking/angle_error_deg {value:.3g} | rate {r.data.metrics['rate/angle_error_deg']:.3g}"
        f" | {r.data.metrics['firing/mean_rate_hz']:.3g} Hz | {word}")
    note = r.data.tags["mlflow.note.content"]
    assert note.index("| spiking/angle_error_deg |") < note.index("| firing/mean_rate_hz |") < \
        note.index("| tuning/directional_fraction |")
    # key figures embedded, each a real PNG from the run's own plots/
    pngs = embedded_pngs(page)
    logged = {a.path for a in client.list_artifacts(res.run_id, "plots")}
    assert 1 <= len(pngs) <= 4 and len(logged) >= len(pngs), logged
    assert all(p.startswith(b"\x89PNG\r\n") for p in pngs)
    # the config's difference from the defaults: the overrides given
    assert ("<td>simulation.scale_firing_rates</td><td>3.0</td><td>100.0</td>") in page
    assert "<td>dataset.scaling</td>" not in page  # auto in both: config.yaml says what it became
    # the logged model carries the loss training ended at (not epoch 0's) and the run's scores
    losses = client.get_metric_history(res.run_id, "train/loss")
    assert [m.step for m in losses] == [0, 1, 2]
    model = {m.key: m for m in client.get_logged_model(r.data.tags["spiketune.model_id"]).metrics}
    assert (model["train/loss"].step, model["train/loss"].value) == (2, losses[-1].value)
    assert model["spiking/angle_error_deg"].value == value
    # every figure, drawn in forked workers while the model was logged, is logged
    assert {p.rsplit("/", 1)[-1] for p in logged} >= {"firing_rates.png", "raster.png",
                                                      "tuning_curves.png", "thresholds.png"}
    assert r.data.metrics["time/plots_wait_s"] >= 0.0
    # less clutter: bookkeeping under one prefix, its start time readable (ISO 8601, UTC)
    assert not any(k.startswith("spiketune.owner.") for k in r.data.tags)
    start = datetime.fromisoformat(r.data.tags["spiketune.bookkeeping.owner.start"])
    assert start.utcoffset() is not None and start.utcoffset().total_seconds() == 0
    # per-layer detail after every headline metric in MLflow's (alphabetical) lists
    detail = [k for k in r.data.metrics if k.startswith("z_detail/")]
    assert "z_detail/firing/hidden0/mean_rate_hz" in detail
    assert sorted(r.data.metrics)[-len(detail):] == sorted(detail)
    assert not [k for k in r.data.metrics if k.count("/") >= 2 and not k.startswith(
        ("z_detail/", "reg/"))]
    # the dataset with its schema (named columns), the model's and experiment's descriptions
    [ds] = client.get_run(res.run_id).inputs.dataset_inputs
    cols = json.loads(ds.dataset.schema)["mlflow_colspec"]
    assert [c["name"] for c in cols] == [f"x{i}" for i in range(8)] + ["y0", "y1"]
    note = client.get_logged_model(r.data.tags["spiketune.model_id"]).tags["mlflow.note.content"]
    assert "float32, shape (n, 8)" in note and "cos θ, sin θ" in note
    exp_note = client.get_experiment(r.info.experiment_id).tags["mlflow.note.content"]
    assert "report.html" in exp_note and "z_detail/" in exp_note
    # the terminal's link opens it in the artifact viewer
    err = capsys.readouterr().err
    assert (f"report      http://127.0.0.1:5000/#/experiments/{r.info.experiment_id}/runs/"
            f"{res.run_id}/artifactPath/report.html?workflowType=machine_learning") in err


def test_a_failed_run_reports_its_error_and_prints_its_link(store, capsys):
    with pytest.raises(UserError):
        run(compose([*TINY, "training.learning_rate=1e6", "tracking.log_model=false",
                     f"tracking.uri={store}"]), console=Console())
    client, [r] = runs(store)
    assert r.info.status == "FAILED"
    page = report_of(client, r.info.run_id)
    assert "FAILED" in page and r.data.tags["error"] in page.replace("&#x27;", "'")
    assert "<td>training.learning_rate</td>" in page
    # the loss up to the divergence: the blow-up is in the run (the guard stops mid-epoch)
    losses = client.get_metric_history(r.info.run_id, "train/loss")
    assert losses and losses[-1].value > 1e6, [m.value for m in losses]  # a loss near 1 trains
    err = capsys.readouterr().err
    assert f"run {r.info.run_id} FAILED: http://127.0.0.1:5000/#/experiments/" in err
    assert f"runs/{r.info.run_id}/artifactPath/report.html" in err


def test_a_sweep_parent_reports_every_child_and_the_best_setting(store, tmp_path, monkeypatch):
    from test_sweeps import fake_run

    code = cli_in_process(["-m", "seed=0,1,2,3", f"tracking.uri={store}",
                           f"hydra.sweep.dir={tmp_path / 'sweep'}"], monkeypatch, fake_run)
    assert code == 2  # seed 1 fails
    client, parent, kids = family(store)
    page = report_of(client, parent.info.run_id)
    note = parent.data.tags["mlflow.note.content"]
    for kid in kids:  # each child: a linked row with its verdict and its headline metrics
        assert f"runs/{kid.info.run_id}/artifactPath/report.html" in page
        if "spiking/mse" in kid.data.metrics:
            mse = f"{kid.data.metrics['spiking/mse']:.4g}"
            assert re.search(rf"\| {re.escape(kid.info.run_name)} \| \w+ \| {mse} \|", note)
    assert "<td>FAILED</td>" in page
    # seeds are repeats of one setting: no child is called best
    assert "Best setting by" not in page
    assert "Only the seed varies: the children are repeats of one setting" in page
    # the comparison's trade-off plot, embedded
    assert any(p.startswith(b"\x89PNG") for p in embedded_pngs(page)) and "tradeoff" in page


@pytest.mark.parametrize("overrides, name", [
    (["experiment=georgopoulos"], "georgopoulos"),
    (["training.learning_rate=1e6", "tracking.uri=sqlite:////x.db"], "lr=1e6"),
    (["simulation.scale_firing_rates=20", "neuron=lif"], "lif scale=20"),
    (["~tuned", "hydra.run.dir=/tmp/x"], ""),
])
def test_a_run_is_named_by_its_preset_and_overrides(overrides, name):
    from framework.report import label

    assert label(overrides, {"neuron", "experiment", "tuned"}) == name


def test_the_default_georgopoulos_and_a_failed_run_have_different_names(store, monkeypatch):
    """Through the real CLI and Hydra (the pipeline a stand-in that names and ends its run): the
    default, the preset, a failing learning rate, and the same again, unique."""
    from framework.pipeline import RunResult
    from framework.report import run_name
    from framework.tracking.store import Tracker, resolve_uri

    def named(cfg, console=None, tags=None):
        uri = resolve_uri(cfg.tracking.uri)
        tracker = Tracker(uri, cfg.tracking.experiment, run_name(cfg, tags, uri), tags=tags)
        tracker.end("FINISHED")
        return RunResult(tracker.run_id, "FINISHED", {})

    for args in ([], ["experiment=georgopoulos"], ["training.learning_rate=1e6"],
                 ["training.learning_rate=1e6"]):
        assert cli_in_process([*args, f"tracking.uri={store}"], monkeypatch, named) == 0
    names = [r.info.run_name for e in ("spiketune", "georgopoulos") for r in runs(store, e)[1]]
    assert names == ["reach-dense-lif", "lr=1e6", "lr=1e6 (2)", "georgopoulos"]


def test_cost_metrics_are_shown_with_their_units_when_logged():
    """plugins/cost.py's operations and energy per sample: in the headline tables, with units,
    only when the run logged them."""
    from framework import report

    metrics = {"spiking/angle_error_deg": 5.0, "cost/synops_per_sample": 125431.7,
               "cost/energy_loihi_j": 2.31e-6, "cost/energy_cpu_j": 0.0042,
               "cost/hidden0/synops_per_sample": 1.0, "time/total_s": 9.0}
    rows = report.headline_rows(metrics)
    assert [r[0] for r in rows] == ["spiking/angle_error_deg", "cost/synops_per_sample",
                                    "cost/energy_cpu_j", "cost/energy_loihi_j", "time/total_s"]
    assert dict(rows)["cost/synops_per_sample"] == "125,432 ops/sample"
    assert dict(rows)["cost/energy_loihi_j"] == "2.31 µJ/sample"
    assert dict(rows)["cost/energy_cpu_j"] == "4.2 mJ/sample"
    assert [r[0] for r in report.headline_rows({"spiking/angle_error_deg": 5.0})] == [
        "spiking/angle_error_deg"]


def test_figures_drawn_by_a_forked_worker_are_all_logged_and_embedded(store, monkeypatch):
    """plugin_host.BACKGROUND (off by default): the figures drawn in a forked worker while the
    model is logged are the run's plots/ and report.html's figures, as drawn in-process."""
    from framework import plugin_host

    monkeypatch.setattr(plugin_host, "BACKGROUND", True)
    res = run(compose([*[o for o in TINY if o != "tracking.plots=false"],
                       f"tracking.uri={store}"]), console=Console(quiet=True))
    client, [r] = runs(store)
    logged = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(res.run_id, "plots")}
    assert {"firing_rates.png", "raster.png", "tuning_curves.png", "thresholds.png"} <= logged
    pngs = embedded_pngs(report_of(client, res.run_id))
    assert len(pngs) == 4 and all(p.startswith(b"\x89PNG\r\n") for p in pngs)
    assert r.data.metrics["time/plots_wait_s"] >= 0.0
    assert not plugin_host._DRAWINGS  # the run took its drawing: nothing left behind
