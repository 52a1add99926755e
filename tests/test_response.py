"""Response curves: analytic rates from the neuron type, measured rates from spiking Nengo
simulations of the same neurons, and the stated tolerance between them."""
from __future__ import annotations

import numpy as np
import pytest

from framework.analysis import Context, Layer
from framework.errors import UserError
from framework.native import ThresholdLIF
from framework.simulation import simulate_constant
from plugins.response import Response, ResponseConfig, analytic_rates, pick

X = np.linspace(-1.0, 1.0, 41)


def layer(neuron_type, gain, bias, threshold, name="h") -> Layer:
    gain = np.asarray(gain, float)
    return Layer(name=name, neuron_type=neuron_type, threshold=threshold,
                 index=np.arange(len(gain)) + 100, gain=gain, bias=np.asarray(bias, float))


def context(layers) -> Context:
    return Context(data=None, layers=layers, dt=0.001, n_steps=100,
                   sample=np.arange(1), seed=3)


def test_analytic_curve_is_nengo_response_curves_for_the_forum_neuron():
    import nengo
    from nengo.utils.ensemble import response_curves

    with nengo.Network() as net:
        ens = nengo.Ensemble(1, 1, gain=[1], bias=[0.6])
    with nengo.Simulator(net, progress_bar=False) as sim:
        x, expected = response_curves(ens, sim, X)
    got = analytic_rates(layer(nengo.LIF(), [1.0], [0.6], 1.0), np.arange(1), X)
    np.testing.assert_allclose(got, expected)
    assert got[X <= 0.4].max() == 0.0 and got[X > 0.41].min() > 0.0  # fires from x = 0.4
    # 1 / (tau_ref + tau_rc·ln(1 + 1/(J − 1))) at x = 1, J = 1.6
    assert got[-1, 0] == pytest.approx(1.0 / (0.002 + 0.02 * np.log(1 + 1 / 0.6)))


@pytest.mark.parametrize("make, threshold", [
    (lambda: __import__("nengo").LIF(amplitude=0.01), 1.0),  # as the converter builds it, scale 100
    (lambda: ThresholdLIF(threshold=0.5), 0.5),
    (lambda: ThresholdLIF(threshold=2.0, amplitude=0.1), 2.0),
    (lambda: __import__("nengo").SpikingRectifiedLinear(amplitude=0.01), 0.0),
])
def test_spiking_rates_match_analytic_within_2hz_plus_1pct(make, threshold):
    nt = make()
    rng = np.random.default_rng(0)
    # gains up to 100 (converter scale) drive LIF close to 1/tau_ref = 500 Hz
    gain = np.concatenate([np.full(5, 100.0), rng.uniform(0.5, 5.0, 10)])
    bias = np.concatenate([rng.uniform(-60, 60, 5), rng.uniform(-2, 3, 10)]) * max(threshold, 1)
    ana = nt.rates(X, gain, bias) / nt.amplitude
    sim = simulate_constant(nt, gain, bias, X, n_steps=1000, dt=0.001, seed=1)
    assert sim.shape == (len(X), len(gain))
    err = np.abs(sim - ana)
    assert np.all(err <= 2.0 + 0.01 * ana), err.max()
    assert ana.max() > 100.0  # the check covered fast neurons, not only slow ones
    # each neuron is silent wherever its x is below its x-intercept (J < J_th)
    xi = (threshold - bias) / gain
    below = X[:, None] < xi[None, :] - 1e-9
    assert np.all(sim[below] == 0.0)


def test_rate_types_are_measured_exactly():
    import nengo

    nt = nengo.LIFRate(amplitude=0.02)
    gain, bias = np.array([50.0, 1.0, 3.0]), np.array([-10.0, 0.5, -1.0])
    sim = simulate_constant(nt, gain, bias, X, n_steps=10)
    np.testing.assert_allclose(sim, nt.rates(X, gain, bias) / nt.amplitude, rtol=1e-10)


def test_the_tolerance_catches_a_gain_off_by_5_percent():
    import nengo

    nt = nengo.LIF()
    gain, bias = np.array([2.0, 4.0]), np.array([0.5, -1.0])
    sim = simulate_constant(nt, gain * 1.05, bias, X, n_steps=1000)
    err = np.abs(sim - nt.rates(X, gain, bias))
    assert np.any(err > 2.0 + 0.01 * nt.rates(X, gain, bias))


def test_plugin_table_metrics_and_neuron_choice():
    import nengo

    lay = layer(nengo.LIF(amplitude=0.01), np.full(50, 100.0), np.linspace(-40, 40, 50), 1.0)
    cfg = ResponseConfig(n_x=21, max_neurons=5, duration=1.0)
    res = Response().run(context([lay]), cfg)
    tab = res.tables["response_curves.csv"]
    assert list(tab.columns) == ["layer", "neuron", "x", "rate_hz", "sim_rate_hz"]
    assert len(tab) == 21 * 5
    # neurons spread over the x-intercepts: lowest and highest included, reported by layer index
    chosen = np.sort(tab.neuron.unique())
    assert chosen[0] == 100 and chosen[-1] == 149 and len(chosen) == 5
    err = np.abs(tab.sim_rate_hz - tab.rate_hz)
    assert res.metrics["response/max_abs_error_hz"] == pytest.approx(err.max())
    assert res.metrics["response/h/max_abs_error_hz"] == pytest.approx(err.max())
    assert res.metrics["response/within_tolerance_fraction"] == 1.0
    assert 0.0 < err.max() <= 2.0 + 0.01 * tab.rate_hz.max()
    fig = res.figures["response_curves"]()
    assert len(fig.axes) == 1
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_pick_spreads_over_x_intercepts_not_indices():
    import nengo

    bias = np.array([0.0, 0.1, 0.2, 0.3, 5.0, -5.0])  # x-intercepts 1, .9, .8, .7, -4, 6
    lay = layer(nengo.LIF(), np.ones(6), bias, 1.0)
    pos = pick(lay, 2)
    assert set(lay.x_intercept[pos]) == {-4.0, 6.0}
    assert list(pick(lay, 10)) == list(range(6))


def test_response_range_must_be_increasing():
    with pytest.raises(UserError, match="analyses.response.x_low"):
        ResponseConfig(x_low=1.0, x_high=1.0)


def test_curves_cover_each_neurons_observed_inputs_by_default():
    """x_low/x_high unset: each neuron's curve spans the x it received, so neurons with equal
    gains and biases but different inputs get different curves; a fixed bound still applies, and
    a layer without observed x falls back to −1 … 1 with a remark."""
    import nengo

    a = layer(nengo.LIFRate(), [1.0, 1.0], [0.0, 0.0], 1.0)
    a.x = np.array([[-2.0, 0.5], [4.0, 3.0], [1.0, 1.0]])  # neuron 0: −2 … 4, neuron 1: 0.5 … 3
    res = Response().run(context([a]), ResponseConfig(n_x=7, max_neurons=2))
    tab = res.tables["response_curves.csv"]
    spans = tab.groupby("neuron").x.agg(["min", "max"])
    np.testing.assert_allclose(spans.loc[100], [-2.0, 4.0])
    np.testing.assert_allclose(spans.loc[101], [0.5, 3.0])
    assert res.metrics["response/max_abs_error_hz"] < 1e-9  # rate type: measured = analytic
    np.testing.assert_allclose(tab.rate_hz, nengo.LIFRate().rates(tab.x.values, 1.0, 0.0).ravel())
    fixed = Response().run(context([a]), ResponseConfig(n_x=7, max_neurons=2, x_high=10.0))
    spans = fixed.tables["response_curves.csv"].groupby("neuron").x.agg(["min", "max"])
    np.testing.assert_allclose(spans.values, [[-2.0, 10.0], [0.5, 10.0]])
    b = layer(nengo.LIFRate(), [1.0], [0.0], 1.0)
    res = Response().run(context([b]), ResponseConfig(n_x=5))
    np.testing.assert_allclose(res.tables["response_curves.csv"].x, np.linspace(-1, 1, 5))
    assert res.remarks and "x was not observed" in res.remarks[0]


def test_simulate_constant_takes_a_grid_per_neuron():
    import nengo

    x = np.array([[0.0, 2.0], [3.0, 5.0]])  # neuron 0 at 0 and 3, neuron 1 at 2 and 5
    got = simulate_constant(nengo.RectifiedLinear(), [1.0, 1.0], [0.0, 1.0], x, n_steps=2)
    np.testing.assert_allclose(got, [[0.0, 3.0], [3.0, 6.0]])
