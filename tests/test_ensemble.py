"""``model=ensemble``: a native Nengo ensemble on a ramp, and the forum thread's worked example
(gain 1, bias 0.6 → x-intercept 0.4; with J_th = 0.5 → −0.1) through the CLI and MLflow."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import cli, compose, runs

from framework.config import validate
from framework.errors import UserError
from framework.plugin_host import neuron_table
from framework.progress import Console

#: 1 / (tau_ref + tau_rc·ln(1 + J_th/(J − J_th))), LIF defaults, J = 1·1 + 0.6
LIF_RATE_AT_1 = 1.0 / (0.002 + 0.02 * np.log(1 + 1 / 0.6))
#: the same with J_th = 0.5: LIF of J/J_th = 3.2
TLIF_RATE_AT_1 = 1.0 / (0.002 + 0.02 * np.log(1 + 1 / 2.2))


def run(overrides):
    from framework.networks.ensemble import run_ensemble
    from framework.resolve import network_nodes

    built = run_ensemble(network_nodes(validate(compose(overrides))), None, None,
                         Console(quiet=True), None)
    return built.context, built.metrics


@pytest.mark.parametrize("neuron, xi, rate_at_1", [
    (["neuron=lif"], 0.4, LIF_RATE_AT_1),
    (["neuron=threshold_lif", "neuron.threshold=0.5"], -0.1, TLIF_RATE_AT_1),
])
def test_forum_neuron_built_and_measured(neuron, xi, rate_at_1):
    ctx, metrics = run(["experiment=threshold_example"] + neuron)
    (lay,) = ctx.layers
    assert lay.name == "ensemble"
    np.testing.assert_array_equal(lay.gain, [1.0])
    np.testing.assert_array_equal(lay.bias, [0.6])
    assert lay.x_intercept[0] == pytest.approx(xi)
    ramp = np.linspace(-1, 1, 41)  # the preset's ramp; data.x_test holds it as float32
    np.testing.assert_allclose(ctx.data.x_test[:, 0], ramp, atol=1e-7)
    assert lay.rates.shape == (41, 1)
    # measured over 1 s per value: silent below the x-intercept, the LIF rate (±1 spike) above
    ana = lay.neuron_type.rates(ramp, lay.gain, lay.bias)[:, 0]
    assert np.all(lay.rates[ramp < xi - 1e-6, 0] == 0.0)
    assert np.max(np.abs(lay.rates[:, 0] - ana)) <= 2.0
    assert lay.rates[-1, 0] == pytest.approx(rate_at_1, abs=2.0)
    # the whole ramp as one spike train: spikes per step sum to the rates × 1 s
    assert lay.spikes.shape == (1, 41 * 1000, 1)
    assert lay.spikes.sum() == pytest.approx(lay.rates.sum() * 1.0)
    row = neuron_table(ctx.layers).iloc[0]
    assert row.x_intercept == pytest.approx(xi)
    assert row.max_rate_hz == pytest.approx(rate_at_1, rel=1e-9)
    assert metrics["time/simulate_s"] > 0


@pytest.mark.parametrize("neuron", ["neuron=lif", "neuron=threshold_lif neuron.threshold=2.0",
                                    "neuron=spiking_relu"])
def test_intercepts_and_max_rates_follow_the_distributions(neuron):
    ctx, _ = run(["model=ensemble", "model.n_neurons=30", "model.intercept_low=-0.5",
                  "model.intercept_high=0.5", "model.max_rate_low=100", "model.max_rate_high=200",
                  "model.n_inputs=5", "simulation.n_steps=20", "simulation.readout_steps=5"]
                 + neuron.split())
    (lay,) = ctx.layers
    assert lay.rates.shape == (5, 30)
    xi = lay.x_intercept
    assert np.all((xi >= -0.5 - 1e-9) & (xi <= 0.5 + 1e-9))
    assert np.ptp(xi) > 0.5  # spread out, not one value
    top = lay.neuron_type.rates(np.ones(1), lay.gain, lay.bias).ravel()
    assert np.all((top >= 100 - 1e-6) & (top <= 200 + 1e-6))


def test_analyses_max_neurons_samples_the_ensemble():
    ctx, _ = run(["model=ensemble", "model.n_neurons=40", "analyses.max_neurons=7",
                  "model.n_inputs=3", "simulation.n_steps=10", "simulation.readout_steps=5"])
    (lay,) = ctx.layers
    assert len(lay.index) == 7 and lay.rates.shape == (3, 7) and lay.spikes.shape[-1] == 7
    assert len(set(lay.index)) == 7 and lay.index.max() < 40


def test_unbuildable_intercepts_are_a_user_error():
    # an intercept of 1 needs an infinite gain to reach the max rate at x = 1
    with pytest.raises(UserError, match="model.intercept_high"):
        run(["model=ensemble", "model.n_neurons=3", "model.intercept_low=1.0",
             "model.intercept_high=1.0", "simulation.n_steps=5", "simulation.readout_steps=5"])


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory):
    """The experiment through the CLI twice (LIF, then J_th = 0.5), in one store."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    for extra in ([], ["neuron=threshold_lif", "neuron.threshold=0.5"]):
        proc = cli(["experiment=threshold_example", "tracking.plots=false"] + extra, uri=uri)
        assert proc.returncode == 0, proc.stderr[-3000:]
    client, found = runs(uri, "threshold_example")
    assert len(found) == 2
    return client, found


@pytest.mark.slow
def test_cli_logs_the_forum_numbers(example_runs):
    client, (lif, tlif) = example_runs
    for run, xi, rate_at_1, threshold in ((lif, 0.4, LIF_RATE_AT_1, 1.0),
                                          (tlif, -0.1, TLIF_RATE_AT_1, 0.5)):
        assert run.info.status == "FINISHED"
        assert run.data.metrics["threshold/x_intercept_median"] == pytest.approx(xi)
        assert run.data.metrics["z_detail/threshold/ensemble/max_rate_hz_median"] == \
            pytest.approx(rate_at_1)
        assert run.data.metrics["response/max_abs_error_hz"] <= 2.0
        neurons = pd.read_csv(client.download_artifacts(run.info.run_id, "neurons.csv"))
        assert len(neurons) == 1
        row = neurons.iloc[0]
        assert (row.layer, row.gain, row.bias, row.threshold) == ("ensemble", 1.0, 0.6, threshold)
        assert row.x_intercept == pytest.approx(xi)
        assert row.max_rate_hz == pytest.approx(rate_at_1)
        curves = pd.read_csv(client.download_artifacts(run.info.run_id, "response_curves.csv"))
        assert list(curves.columns) == ["layer", "neuron", "x", "rate_hz", "sim_rate_hz"]
        assert curves.loc[curves.x < xi - 1e-6, "sim_rate_hz"].max() == 0.0
        assert curves.loc[curves.x > xi + 0.05, "sim_rate_hz"].min() > 0.0
    assert tlif.data.params["neuron.threshold"] == "0.5"
