"""x-intercepts and max rates: the plugin's numbers, that they are read from the network as built
and trained (gain = scale_firing_rates, bias = scale × Keras bias), and a sweep over J_th."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import TINY, cli, prepared, runs

from framework.analysis import Context, Layer
from framework.native import ThresholdLIF
from framework.progress import Console
from plugins.thresholds import Thresholds, ThresholdsConfig, max_rates_hz


def layer(name, neuron_type, gain, bias, threshold) -> Layer:
    gain = np.asarray(gain, float)
    return Layer(name=name, neuron_type=neuron_type, threshold=threshold,
                 index=np.arange(len(gain)), gain=gain, bias=np.asarray(bias, float))


def test_metrics_from_known_gains_and_biases():
    import nengo

    # LIF, J_th 1: x-intercepts (1 − b)/g = 0.5, 0.25, −1, and inf for gain 0 (left out)
    a = layer("a", nengo.LIF(amplitude=0.1), [1.0, 2.0, 1.0, 0.0], [0.5, 0.5, 2.0, 0.3], 1.0)
    # ThresholdLIF, J_th 0.5: (0.5 − b)/g = 0.1, 0.3
    b = layer("b", ThresholdLIF(threshold=0.5), [2.0, 1.0], [0.3, 0.2], 0.5)
    ctx = Context(data=None, layers=[a, b], dt=0.001, n_steps=1,
                  sample=np.arange(1))
    m = Thresholds().run(ctx, ThresholdsConfig()).metrics
    assert m["threshold/a/x_intercept_median"] == pytest.approx(0.25)
    assert m["threshold/b/x_intercept_median"] == pytest.approx(0.2)
    assert m["threshold/x_intercept_median"] == pytest.approx(0.25)  # of .5 .25 −1 .1 .3
    assert m["threshold/a/active_at_zero_fraction"] == pytest.approx(0.25)
    assert m["threshold/b/active_at_zero_fraction"] == 0.0
    # max rate in Hz whatever the amplitude: LIF at J = 1·1 + 2 = 3, amplitude divided out
    rates = max_rates_hz(a)
    assert rates[2] == pytest.approx(1.0 / (0.002 + 0.02 * np.log1p(1 / 2.0)))
    assert rates[3] == 0.0  # J = 0.3 < 1
    expected_b = [1 / (0.002 + 0.02 * np.log1p(0.5 / (2.3 - 0.5))),
                  1 / (0.002 + 0.02 * np.log1p(0.5 / (1.2 - 0.5)))]
    assert m["threshold/b/max_rate_hz_median"] == pytest.approx(np.median(expected_b))


def test_histogram_figure_draws_each_layer():
    import matplotlib.pyplot as plt
    import nengo

    a = layer("a", nengo.LIF(), np.ones(20), np.linspace(0, 2, 20), 1.0)
    ctx = Context(data=None, layers=[a, a], dt=0.001, n_steps=1,
                  sample=np.arange(1))
    fig = Thresholds().run(ctx, ThresholdsConfig(bins=5)).figures["thresholds"]()
    assert len(fig.axes) == 6  # per layer: x-intercepts, their quantiles, rates
    plt.close(fig)


def test_x_intercepts_are_placed_in_the_observed_inputs():
    """Columns x_observed_min/max and x_intercept_quantile, and the quantile metric, from a layer
    whose inputs are known: neuron 0 (x-intercept 0.5) sees x = 0, 0.25, …, 1 (2 of 5 below);
    neuron 1 (x-intercept −1) sees the same (none below: fires on every input); neuron 2 (gain 0)
    has no threshold."""
    import nengo

    from framework.plugin_host import neuron_table

    x = np.repeat(np.linspace(0.0, 1.0, 5)[:, None], 3, axis=1)
    a = Layer(name="a", neuron_type=nengo.LIF(), threshold=1.0, index=np.arange(3),
              gain=np.array([1.0, 1.0, 0.0]), bias=np.array([0.5, 2.0, 0.3]),
              rates=np.zeros((5, 3)), x=x)
    table = neuron_table([a])
    np.testing.assert_allclose(table.x_observed_min, 0.0)
    np.testing.assert_allclose(table.x_observed_max, 1.0)
    np.testing.assert_allclose(table.x_intercept_quantile, [0.4, 0.0, np.nan])
    ctx = Context(data=None, layers=[a], dt=0.001, n_steps=1, sample=np.arange(5))
    m = Thresholds().run(ctx, ThresholdsConfig()).metrics
    assert m["threshold/a/x_intercept_quantile_median"] == pytest.approx(0.2)
    # a sequence's bins are the distribution: each (sample, bin) value counts once
    b = Layer(name="b", neuron_type=nengo.LIF(), threshold=1.0, index=np.arange(1),
              gain=np.ones(1), bias=np.zeros(1), rates=np.zeros((2, 1)), x=np.full((2, 1), 1.5),
              binned_x=np.array([[[0.0], [3.0]], [[0.5], [2.5]]]))
    row = neuron_table([b]).iloc[0]
    assert (row.x_observed_min, row.x_observed_max, row.x_intercept_quantile) == (0.0, 3.0, 0.5)


def test_built_gain_and_bias_are_scale_times_keras_and_explain_the_simulated_rates(tmp_path):
    """Gains and biases are read from what the simulator built and trained.

    Untrained (epochs 0) with known, non-zero Keras biases: gain == scale_firing_rates and
    bias == scale × Keras bias exactly. Trained: the biases differ from the initial ones, and the
    analytic rates at the layer's weighted inputs (input @ trained weights, read from the trained
    simulator) reproduce the simulated rates of a rate-neuron network (no synapse).
    """
    from framework import models
    from framework.conversion import Conversion, convert, neuron_layers
    from framework.simulation import simulate
    from framework.training import train

    scale = 50.0
    base = TINY + ["neuron=lif_rate", "simulation.synapse=null", "simulation.n_steps=3",
                   "simulation.readout_steps=3", f"simulation.scale_firing_rates={scale}"]
    console = Console(quiet=True)
    results = {}
    for epochs in (0, 4):
        cfg, data = prepared(base + [f"training.epochs={epochs}"])
        model = models.build(cfg.model, data, cfg.seed)
        keras_layer = model.get_layer("hidden0")
        kernel, _ = keras_layer.get_weights()
        keras_bias = np.random.default_rng(1).normal(0.0, 0.2, kernel.shape[1]).astype(np.float32)
        keras_layer.set_weights([kernel, keras_bias])
        nt = cfg.neuron.build()
        conv = Conversion(nt, scale, {}, cfg.seed)
        trained = train(model, data, cfg.training, cfg.simulation, conv,
                        out_dir=tmp_path / f"e{epochs}", console=console)
        sim = simulate(model, trained.params, data, cfg.simulation, conv, console)
        built = {b.name: b for b in sim.layers}["hidden0"]
        results[epochs] = (built, keras_bias, kernel)
        np.testing.assert_allclose(built.gain, scale)
        if epochs == 0:
            np.testing.assert_allclose(built.bias, scale * keras_bias, rtol=1e-6, atol=1e-6)
            weights = kernel
        else:
            assert np.max(np.abs(built.bias - scale * keras_bias)) > 0.01  # training moved them
            import nengo_dl

            converter = convert(model, nt, scale, synapse=None, seed=cfg.seed)
            ens_neurons = neuron_layers(converter, model)["hidden0"]
            conn = next(c for c in converter.net.all_connections if c.post_obj is ens_neurons)
            with nengo_dl.Simulator(converter.net, progress_bar=False) as nsim:
                nsim.load_params(str(trained.params))
                weights = np.asarray(nsim.data[conn].weights).T  # (inputs, neurons)
            assert np.max(np.abs(weights - kernel)) > 1e-3
        x = data.x_test[sim.sample] @ weights  # the layer's weighted input without bias
        # the x the run observed (from the input current J) is that same weighted input
        np.testing.assert_allclose(built.x, x, rtol=1e-4, atol=1e-4)
        amp = built.neuron_type.amplitude
        assert amp == pytest.approx(1.0 / scale)
        expected = built.neuron_type.rates(x, built.gain, built.bias) / amp
        np.testing.assert_allclose(built.rates, expected, rtol=1e-4, atol=1e-3)
        assert built.rates.max() > 50.0  # the check saw neurons firing, not only silence


@pytest.mark.slow
def test_sweep_over_thresholds_moves_x_intercepts_and_rates(uri):
    """``spiketune -m neuron=threshold_lif neuron.threshold=0.25,0.5,1.0`` (basic launcher)."""
    proc = cli(["-m", "neuron=threshold_lif", "neuron.threshold=0.25,0.5,1.0"] + TINY, uri=uri)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, found = runs(uri)
    jobs = {float(r.data.params["neuron.threshold"]): r for r in found
            if "neuron.threshold" in r.data.params}
    assert sorted(jobs) == [0.25, 0.5, 1.0]
    medians, rates = [], []
    for th in (0.25, 0.5, 1.0):
        run = jobs[th]
        assert run.info.status == "FINISHED"
        neurons = pd.read_csv(client.download_artifacts(run.info.run_id, "neurons.csv"))
        assert np.all(neurons.threshold == th) and np.all(neurons.neuron_type == "ThresholdLIF")
        np.testing.assert_allclose(neurons.x_intercept,
                                   (th - neurons.bias) / neurons.gain, rtol=1e-9)
        medians.append(run.data.metrics["threshold/x_intercept_median"])
        rates.append(run.data.metrics["firing/mean_rate_hz"])
    # gain 100 (scale), biases near 0: x-intercept ≈ J_th/100, rates fall as J_th rises
    assert medians[0] < medians[1] < medians[2]
    np.testing.assert_allclose(medians, np.array([0.25, 0.5, 1.0]) / 100, atol=0.003)
    assert rates[0] > rates[1] > rates[2]
