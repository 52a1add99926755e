"""Digits on the conv net with spiking LIF neurons, and the ``classes`` analysis."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import cli, compose, runs

from framework.analysis import Context, Layer
from framework.config import validate
from framework.plugin_host import select
from plugins.classes import Classes, ClassesConfig, class_rates


@pytest.fixture
def uri(store):
    """This module's runs log to a copy of an empty, migrated store (conftest's ``store``): no
    run here is about creating a store, and MLflow's migrations cost each run seconds."""
    return store


def test_class_rates_means_and_anova_match_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    labels = np.repeat([3, 5, 7], [4, 6, 5])
    rates = rng.uniform(0, 50, (len(labels), 4))
    rates[:, 1] += 80.0 * (labels == 5)  # neuron 1 prefers class 5, strongly
    rates[:, 2] = 12.0  # a neuron firing the same on every sample
    rates[:, 3] = np.where(labels == 7, 30.0, 10.0)  # no spread within a class
    fit = class_rates(rates, labels)
    assert fit.classes.tolist() == [3, 5, 7] and fit.n_samples.tolist() == [4, 6, 5]
    np.testing.assert_allclose(fit.mean[1], rates[labels == 5].mean(axis=0))
    for n in (0, 1):
        f, p = stats.f_oneway(*(rates[labels == c, n] for c in (3, 5, 7)))
        assert fit.f_stat[n] == pytest.approx(f, rel=1e-9)
        assert fit.p_value[n] == pytest.approx(p, rel=1e-9)
    assert fit.preferred[1] == 5 and fit.p_value[1] < 1e-3
    assert np.isnan(fit.f_stat[2]) and fit.p_value[2] == 1.0
    assert fit.preferred[3] == 7 and fit.p_value[3] == 0.0


def fake_context(task="classification"):
    """Two layers over 6 test samples of classes 0, 1, 2; the read-out gets class 2 wrong once."""
    from framework.data.base import Data

    y = np.array([0, 0, 1, 1, 2, 2])
    data = Data(name="toy", task=task, x_train=np.zeros((6, 2)), y_train=y,
                x_test=np.zeros((6, 2)), y_test=y, n_outputs=3)
    a = np.array([[10, 0], [12, 0], [30, 1], [32, 1], [50, 0], [52, 0]], float)
    b = np.full((6, 3), 7.0)
    layers = [Layer(name="a", neuron_type=None, threshold=1.0, index=np.array([0, 4]),
                    gain=np.ones(2), bias=np.zeros(2), rates=a),
              Layer(name="b", neuron_type=None, threshold=1.0, index=np.arange(3),
                    gain=np.ones(3), bias=np.zeros(3), rates=b)]
    return Context(data=data, layers=layers, dt=0.001, n_steps=10, sample=np.arange(6),
                   outputs=np.eye(3)[[0, 0, 1, 1, 2, 0]])


def test_classes_plugin_metrics_columns_and_table():
    res = Classes().run(fake_context(), ClassesConfig())
    m = res.metrics
    assert m["classes/a/class0_mean_rate_hz"] == pytest.approx((11 + 0) / 2)
    assert m["classes/a/class2_mean_rate_hz"] == pytest.approx((51 + 0) / 2)
    assert m["classes/b/class1_mean_rate_hz"] == 7.0
    assert m["classes/a/selective_fraction"] == 1.0  # neuron 0 strongly, neuron 4 (1 Hz on class 1)
    assert m["classes/b/selective_fraction"] == 0.0
    assert m["classes/selective_fraction"] == pytest.approx(2 / 5)
    assert (m["classes/class0_accuracy"], m["classes/class2_accuracy"]) == (1.0, 0.5)
    cols = res.neurons.set_index(["layer", "neuron"])
    assert cols.loc[("a", 0), "preferred_class"] == 2 and cols.loc[("a", 4), "preferred_class"] == 1
    table = res.tables["class_rates.csv"]
    assert list(table.columns) == ["layer", "neuron", "class", "mean_rate_hz", "n_samples"]
    assert len(table) == 3 * 2 + 3 * 3
    row = table[(table.layer == "a") & (table.neuron == 0) & (table["class"] == 1)]
    assert row.mean_rate_hz.item() == 31.0 and row.n_samples.item() == 2
    fig = res.figures["class_rates"]()
    assert len(fig.axes) >= 2


def test_classes_applies_to_classification_only():
    assert Classes.applies(fake_context().data) is None
    assert "classification" in Classes.applies(fake_context("regression").data)
    assert "classes" in select(["auto"], fake_context().data)
    assert "classes" not in select(["auto"], fake_context("regression").data)


def test_digits_conv_defaults():
    """The plain digits/conv command gets the tuned LIF amplitude and keeps every global default."""
    cfg = validate(compose(["dataset=digits", "model=conv", "neuron=lif"]))
    assert cfg.neuron.amplitude == 0.05
    assert (cfg.training.learning_rate, cfg.training.epochs) == (0.003, 60)
    assert cfg.simulation.scale_firing_rates == 100.0
    assert validate(compose(["dataset=digits"])).neuron.amplitude == 1.0  # dense: untouched
    preset = validate(compose(["experiment=digits"]))
    assert (preset.dataset.name, preset.model.name, preset.neuron.name) == ("digits", "conv", "lif")
    assert preset.neuron.amplitude == 0.05 and preset.training.epochs == 30
    assert validate(compose(["experiment=digits", "neuron.amplitude=1"])).neuron.amplitude == 1.0


@pytest.mark.slow
def test_digits_conv_lif_spikes_at_90_percent(uri, tmp_path):
    """``spiketune dataset=digits model=conv neuron=lif``, as a user types it (plus the store; an
    empty training cache, so it really trains)."""
    proc = cli(["dataset=digits", "model=conv", "neuron=lif"], uri=uri, timeout=900,
               env={"SPIKETUNE_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, found = runs(uri)
    run = found[0]
    assert run.data.tags["spiketune.training_cache"] == "miss"
    m = run.data.metrics
    assert m["spiking/accuracy"] >= 0.90, m
    assert m["rate/accuracy"] >= 0.90
    assert 10.0 < m["firing/mean_rate_hz"] < 300.0  # spiking for real, not silent or saturated
    # Silent: below 0.1 Hz on every test sample. Almost all are units that died in training (a
    # whole conv filter silent at every position, a dense unit never active), the rest conv
    # filters at border positions no digit reaches. Measured, seed 0 on this stack (Python 3.11
    # and 3.12 bit for bit the same): conv0 0.325, conv1 0.248 (7 of 32 filters dead), hidden
    # 0.469, pooled 0.306; other float paths of the same code (oneDNN's AVX2 or SSE4.1 GEMM
    # kernels) 0.284 and 0.313, seeds 2 and 3 0.183 and 0.309, and one run elsewhere 0.5275; at
    # learning rate 0.01 seed 1 diverges. Units die in the first epoch (after it: hidden 0.58,
    # conv1 0.32), so how many is chaotic in the rounding; at 0.003 seeds 0 and 1 give 0.060 and
    # 0.084 at 97-99% accuracy. The per-layer numbers are in the message.
    silent = {k: round(v, 3) for k, v in m.items() if k.endswith("silent_fraction")}
    assert m["firing/silent_fraction"] < 0.5, silent
    for layer in ("conv0", "conv1", "hidden"):
        rates = [m[f"z_detail/classes/{layer}/class{c}_mean_rate_hz"] for c in range(10)]
        assert all(r > 0 for r in rates), layer
    # the trained dense units care about the digit (TF 2.21: 0.58; conv1's stride-2 units, many of
    # which see only the blank border, 0.40, so all layers pooled are 0.495, on TF 2.12 above 0.5)
    assert m["z_detail/classes/hidden/selective_fraction"] > 0.5
    table = pd.read_csv(client.download_artifacts(run.info.run_id, "class_rates.csv"))
    assert set(table["class"]) == set(range(10))
    neurons = pd.read_csv(client.download_artifacts(run.info.run_id, "neurons.csv"))
    assert {"preferred_class", "class_p_value", "class_selective"} <= set(neurons.columns)
    assert "class_rates.png" in {f.path.split("/")[-1] for f in client.list_artifacts(
        run.info.run_id, "plots")}
