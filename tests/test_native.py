"""ThresholdLIF / ThresholdLIFRate: Nengo semantics, and NengoDL's native builders and gradient."""
from __future__ import annotations

import subprocess
import sys
import warnings

import nengo
import numpy as np
import pytest

from framework.native import ThresholdLIF, ThresholdLIFRate, rate_version

DT = 0.001  # s
TAU_RC, TAU_REF = 0.02, 0.002  # s


def analytic_rate(J, threshold, tau_rc=TAU_RC, tau_ref=TAU_REF, amplitude=1.0):
    """r(J) = amplitude / (tau_ref + tau_rc·log1p(J_th / (J − J_th))) for J > J_th, else 0 (Hz)."""
    J = np.asarray(J, dtype=float)
    out = np.zeros_like(J)
    above = J > threshold
    out[above] = amplitude / (tau_ref + tau_rc * np.log1p(threshold / (J[above] - threshold)))
    return out


def sine_net(neuron_type, seed=3, n=25):
    with nengo.Network(seed=seed) as net:
        stim = nengo.Node(lambda t: np.sin(2 * np.pi * 3 * t))
        ens = nengo.Ensemble(n, 1, neuron_type=neuron_type)
        nengo.Connection(stim, ens, synapse=None)
        probe = nengo.Probe(ens.neurons)
    return net, probe


# neurons below J_th at x = 1 have no max rate: Nengo's max_rates_intercepts warns (as for LIF)
quiet_max_rates = pytest.mark.filterwarnings("ignore:Non-finite values:UserWarning",
                                             "ignore:invalid value:RuntimeWarning")


def constant_current_net(neuron_type, J):
    """Neurons driven by the constant currents ``J`` (gain = J, bias = 0, x = 1)."""
    with nengo.Network(seed=0) as net:
        stim = nengo.Node([1.0])
        ens = nengo.Ensemble(len(J), 1, neuron_type=neuron_type, gain=J, bias=np.zeros(len(J)),
                             encoders=np.ones((len(J), 1)))
        nengo.Connection(stim, ens, synapse=None)
        probe = nengo.Probe(ens.neurons)
    return net, probe


def test_import_does_not_load_tensorflow():
    code = ("import sys, framework.native; "
            "assert 'tensorflow' not in sys.modules and 'nengo_dl' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_threshold_must_be_positive():
    with pytest.raises(nengo.exceptions.ValidationError):
        ThresholdLIF(threshold=0.0)
    with pytest.raises(nengo.exceptions.ValidationError):
        ThresholdLIFRate(threshold=-1.0)
    assert ThresholdLIF().threshold == 1.0


@pytest.mark.parametrize("cls, ref", [(ThresholdLIFRate, nengo.LIFRate), (ThresholdLIF, nengo.LIF)])
def test_threshold_one_equals_nengo_lif(cls, ref):
    ours, theirs = cls(tau_rc=0.03, amplitude=0.5), ref(tau_rc=0.03, amplitude=0.5)
    x = np.linspace(-1, 1.5, 101)
    gain, bias = theirs.gain_bias(np.array([50.0, 150.0, 300.0]), np.array([-0.7, 0.0, 0.6]))
    assert np.array_equal(ours.rates(x, gain, bias), theirs.rates(x, gain, bias))
    for a, b in zip(ours.gain_bias([50.0, 150.0, 300.0], [-0.7, 0.0, 0.6]), (gain, bias)):
        assert np.array_equal(a, b)
    for a, b in zip(ours.max_rates_intercepts(gain, bias), theirs.max_rates_intercepts(gain, bias)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("threshold", [0.5, 2.0])
@pytest.mark.parametrize("cls", [ThresholdLIFRate, ThresholdLIF])
def test_rates_follow_formula(cls, threshold):
    neuron = cls(threshold=threshold, amplitude=0.25)
    J = threshold * np.array([-1.0, 0.5, 1.0, 1.0001, 1.2, 2.0, 7.0])
    rates = neuron.rates(np.array([1.0]), J, np.zeros(len(J)))[0]  # x = 1, gain = J, bias = 0
    expected = analytic_rate(J, threshold, amplitude=0.25)
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    assert rates[2] == 0 and rates[3] > 0  # fires only above J_th
    # spot check by hand: J = 2·J_th gives 0.25 / (0.002 + 0.02·ln 2) = 15.7 Hz, whatever J_th is
    assert rates[5] == pytest.approx(0.25 / (0.002 + 0.02 * np.log(2)), rel=1e-12)
    # the step the simulator calls agrees with rates
    out = np.zeros(len(J))
    ThresholdLIFRate.step(neuron, DT, J, out)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize("threshold", [0.5, 1.0, 2.0])
def test_gain_bias_round_trip_and_agree_with_rates(threshold):
    neuron = ThresholdLIF(threshold=threshold)
    max_rates = np.array([20.0, 100.0, 250.0, 400.0])  # Hz
    intercepts = np.array([-0.9, -0.2, 0.3, 0.95])
    gain, bias = neuron.gain_bias(max_rates, intercepts)
    np.testing.assert_allclose(gain, threshold * nengo.LIF().gain_bias(max_rates, intercepts)[0])

    mr, ic = neuron.max_rates_intercepts(gain, bias)
    np.testing.assert_allclose(mr, max_rates, rtol=1e-9)
    np.testing.assert_allclose(ic, intercepts, rtol=1e-9)
    # the contract's definition of x_intercept
    np.testing.assert_allclose((threshold - bias) / gain, intercepts, rtol=1e-9)

    at_1 = neuron.rates(np.array([1.0]), gain, bias)[0]
    np.testing.assert_allclose(at_1, max_rates, rtol=1e-9)
    # neuron i evaluated at x[i] (rates() gives every neuron at every x)
    rates_at = lambda x: np.diag(neuron.rates(x, gain, bias))  # noqa: E731
    assert np.all(rates_at(intercepts - 1e-6) == 0)
    assert np.all(rates_at(intercepts + 1e-3) > 0)


def test_rate_version():
    t = ThresholdLIF(tau_rc=0.05, tau_ref=0.001, amplitude=0.1, threshold=1.5)
    r = rate_version(t)
    assert type(r) is ThresholdLIFRate
    assert (r.tau_rc, r.tau_ref, r.amplitude, r.threshold) == (0.05, 0.001, 0.1, 1.5)
    assert rate_version(nengo.LIF(tau_rc=0.03, amplitude=0.2)) == nengo.LIFRate(tau_rc=0.03,
                                                                                amplitude=0.2)
    assert rate_version(nengo.SpikingRectifiedLinear(amplitude=0.3)) == nengo.RectifiedLinear(
        amplitude=0.3)
    relu = nengo.RectifiedLinear()
    assert rate_version(relu) is relu
    assert rate_version(r) is r


def test_threshold_one_spikes_identical_in_nengo():
    data = []
    for neuron_type in (nengo.LIF(), ThresholdLIF(threshold=1.0)):
        net, probe = sine_net(neuron_type)
        with nengo.Simulator(net, dt=DT, seed=1, progress_bar=False) as sim:
            sim.run_steps(400)
        data.append(sim.data[probe])
    assert data[0].sum() > 100  # the network does spike
    assert np.array_equal(data[0], data[1])


@quiet_max_rates
@pytest.mark.parametrize("threshold", [0.5, 2.0])
def test_simulated_rates_match_analytic_in_nengo(threshold):
    J = threshold * np.array([0.5, 0.99, 1.02, 1.1, 1.5, 2.0, 4.0, 10.0])
    net, probe = constant_current_net(ThresholdLIF(threshold=threshold), J)
    with nengo.Simulator(net, dt=DT, progress_bar=False) as sim:
        sim.run_steps(1000)  # 1 s
    sim_rates = sim.data[probe].sum(axis=0) * DT  # spikes in 1 s = Hz
    expected = analytic_rate(J, threshold)
    assert np.all(sim_rates[:2] == 0)  # below J_th (and J = 1 < J_th = 2 too): silent
    np.testing.assert_allclose(sim_rates, expected, rtol=0.01, atol=2.0)


# --------------------------------------------------------------------------- NengoDL


@pytest.fixture(scope="module")
def nengo_dl():
    nengo_dl = pytest.importorskip("nengo_dl")
    from framework.native import register_tf_builders

    register_tf_builders()
    return nengo_dl


def neuron_builders(sim):
    """The TF builder instance used for each SimNeurons group in a NengoDL simulator."""
    from nengo_dl.neuron_builders import SimNeuronsBuilder

    return {type(b.ops[0].neurons): b.built_neurons
            for b in sim.tensor_graph.op_builder.op_builds.values()
            if isinstance(b, SimNeuronsBuilder)}


def test_register_is_idempotent(nengo_dl):
    from nengo_dl.neuron_builders import SimNeuronsBuilder

    from framework.native import ThresholdLIFBuilder, register_tf_builders

    before = dict(SimNeuronsBuilder.TF_NEURON_IMPL)
    register_tf_builders()
    assert SimNeuronsBuilder.TF_NEURON_IMPL == before
    assert SimNeuronsBuilder.TF_NEURON_IMPL[ThresholdLIF] is ThresholdLIFBuilder


def test_nengo_dl_builds_native_without_fallback(nengo_dl):
    from framework.native import ThresholdLIFBuilder, ThresholdLIFRateBuilder

    class UnregisteredLIF(nengo.LIF):
        """Negative control: proves the warning check below can fail."""

    with nengo.Network(seed=0) as net:
        stim = nengo.Node([0.5])
        for neuron_type in (ThresholdLIF(threshold=2.0), ThresholdLIFRate(threshold=0.5),
                            UnregisteredLIF()):
            ens = nengo.Ensemble(4, 1, neuron_type=neuron_type)
            nengo.Connection(stim, ens)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with nengo_dl.Simulator(net, progress_bar=False) as sim:
            builders = neuron_builders(sim)
    fallback = [str(w.message) for w in caught
                if "falling back" in str(w.message) or "native" in str(w.message)]
    assert len(fallback) == 1 and "UnregisteredLIF" in fallback[0]
    assert type(builders[ThresholdLIF]) is ThresholdLIFBuilder
    assert type(builders[ThresholdLIFRate]) is ThresholdLIFRateBuilder


def test_threshold_one_spikes_identical_in_nengo_dl(nengo_dl):
    data = []
    for neuron_type in (nengo.LIF(), ThresholdLIF(threshold=1.0)):
        net, probe = sine_net(neuron_type)
        with nengo_dl.Simulator(net, dt=DT, seed=1, progress_bar=False) as sim:
            sim.run_steps(400)
        data.append(sim.data[probe])
    assert data[0].sum() > 100
    assert np.array_equal(data[0], data[1])


@quiet_max_rates
def test_simulated_rates_match_analytic_in_nengo_dl(nengo_dl):
    threshold = 2.0
    J = threshold * np.array([0.5, 0.99, 1.02, 1.1, 1.5, 2.0, 4.0, 10.0])
    with nengo.Network(seed=0) as net:
        spiking_net, p_spikes = constant_current_net(ThresholdLIF(threshold=threshold), J)
        rate_net, p_rates = constant_current_net(ThresholdLIFRate(threshold=threshold), J)
    with nengo_dl.Simulator(net, dt=DT, progress_bar=False) as sim:
        sim.run_steps(1000)  # 1 s
    expected = analytic_rate(J, threshold)
    sim_rates = sim.data[p_spikes].sum(axis=0) * DT
    assert np.all(sim_rates[:2] == 0)
    np.testing.assert_allclose(sim_rates, expected, rtol=0.01, atol=2.0)
    np.testing.assert_allclose(sim.data[p_rates][-1], expected, rtol=1e-5)  # float32


def test_fit_uses_rate_approximation_with_gradient(nengo_dl):
    """sim.fit trains through ThresholdLIF: rates (not spikes) in training, and a gradient."""
    import tensorflow as tf

    threshold, n_neurons = 2.0, 16
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, size=(64, 1, 2))
    target = x[..., :1] * x[..., 1:]  # a product: needs the neurons' nonlinearity

    with nengo.Network(seed=0) as net:
        nengo_dl.configure_settings(trainable=None, stateful=False)
        inp = nengo.Node(np.zeros(2))
        ens = nengo.Ensemble(n_neurons, 2, neuron_type=ThresholdLIF(threshold=threshold),
                             max_rates=nengo.dists.Uniform(100, 200))
        nengo.Connection(inp, ens, synapse=None)
        out = nengo.Node(size_in=1)
        # fixed random readout: the loss can only fall if gradients pass through the neurons
        readout = nengo.Connection(ens.neurons, out, synapse=None,
                                   transform=rng.uniform(-1, 1, (1, n_neurons)) / 200)
        net.config[readout].trainable = False
        p_out = nengo.Probe(out)
        p_rates = nengo.Probe(ens.neurons)

    with nengo_dl.Simulator(net, minibatch_size=32, seed=0, progress_bar=False) as sim:
        gain = sim.data[ens].gain
        bias = sim.data[ens].bias
        enc = sim.data[ens].scaled_encoders / gain[:, None]  # unit encoders
        analytic = ens.neuron_type.rates(x[:, 0] @ enc.T, gain, bias)  # Hz, (64, n)

        # learning rate 0: the training-mode neuron output is exactly the analytic rate
        sim.compile(optimizer=tf.optimizers.SGD(0.0), loss={p_rates: tf.losses.mse})
        loss0 = sim.fit({inp: x}, {p_rates: analytic[:, None]}, epochs=1, verbose=0)
        assert loss0.history["loss"][0] < 1e-6 * np.mean(analytic ** 2)

        sim.compile(optimizer=tf.optimizers.Adam(0.05), loss={p_out: tf.losses.mse})
        hist = sim.fit({inp: x}, {p_out: target}, epochs=30, verbose=0)
        before, after = hist.history["loss"][0], hist.history["loss"][-1]
        assert np.all(np.isfinite(hist.history["loss"]))
        assert after < 0.5 * before, (before, after)
