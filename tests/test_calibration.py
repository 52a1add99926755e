"""Conversion methods on networks whose neurons we know: the mean-rate normalisation, the input
shifts of bias calibration (Li et al. 2021), and the initial membrane voltage."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest


def _known_net(tmp_path, kernel, bias, scale: float = 100.0):
    """A Keras Dense(ReLU) layer with the given weights and a linear read-out, its NengoDL
    parameters saved as converted; (model, params path)."""
    from framework import quiet

    quiet.tensorflow()
    import nengo
    import nengo_dl
    import tensorflow as tf

    from framework.conversion import Conversion

    kernel = np.asarray(kernel, np.float32)
    inp = tf.keras.Input((kernel.shape[0],))
    h = tf.keras.layers.Dense(kernel.shape[1], activation=tf.nn.relu, name="h")(inp)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(1, name="out")(h))
    model.get_layer("h").set_weights([kernel, np.asarray(bias, np.float32)])
    conv = Conversion(nengo.RectifiedLinear(), scale, {}, 0)
    with nengo_dl.Simulator(conv.convert(model, None, rate=True).net, progress_bar=False) as sim:
        sim.save_params(str(tmp_path / "params"))
    return model, tmp_path / "params"


def test_mean_rate_scale_is_exact_for_relu_and_found_on_the_lif_curve():
    import nengo

    from framework.conversion import mean_rate_scale
    from framework.errors import UserError

    acts = np.array([0.0, 0.0, 0.5, 1.0, 2.5])  # mean 0.8
    scale, mean = mean_rate_scale(nengo.SpikingRectifiedLinear(), acts, 40.0)
    assert mean == pytest.approx(0.8) and scale == pytest.approx(50.0)
    lif = nengo.LIF(tau_rc=0.02, tau_ref=0.002)
    scale, _ = mean_rate_scale(lif, acts, 40.0)
    rates = lif.rates(acts[:, None], np.array([scale]), np.zeros(1))[:, 0]
    assert rates.mean() == pytest.approx(40.0, rel=1e-6)
    assert rates[0] == 0 and rates[-1] > rates[-2]  # a LIF neuron below J = 1 stays silent
    with pytest.raises(UserError, match=r"conversion.mean_rate_hz: 600 Hz .* LIF"):
        mean_rate_scale(lif, acts, 600.0)  # 3 of 5 active, each under 1/tau_ref = 500 Hz


def test_an_input_shift_moves_an_always_active_neuron_by_exactly_the_shift(tmp_path):
    import nengo

    from framework.calibration import layer_means
    from framework.conversion import Conversion
    from framework.simulation import SimulationConfig

    # neuron 0: x0 + 0.5 > 0 on every input; neuron 1: x1 − 3 < 0 on every input (silent)
    model, params = _known_net(tmp_path, [[1, 0], [0, 1]], [0.5, -3.0])
    x = np.random.default_rng(0).uniform(0, 1, (16, 1, 2)).astype(np.float32)
    s = SimulationConfig(n_steps=2000, synapse=None, minibatch_size=16, readout_steps=2000)
    conv = Conversion(nengo.SpikingRectifiedLinear(), 100.0, {}, 0)
    rate = layer_means(model, params, x, s, conv, rate=True)["h"]
    assert rate == pytest.approx([x[:, 0, 0].mean() + 0.5, 0.0], abs=1e-6)
    before = layer_means(model, params, x, s, conv, rate=False)["h"]
    after = layer_means(model, params, x, s, dataclasses.replace(
        conv, calibration={"h": np.array([0.25, 1.0])}), rate=False)["h"]
    # one spike is 1/100 per 1 ms step: over 2000 steps a mean is exact to 5e-3 / 2000 per trial
    assert after[0] - before[0] == pytest.approx(0.25, abs=1e-3)
    assert before[1] == 0 and after[1] == 0  # x1 − 3 + 1 is still below 0


def test_the_initial_voltage_decides_the_first_spike(tmp_path):
    """J·dt = 0.15 a step: from rest the voltage is 0.9 after 6 steps (no spike); from half it
    crosses 1 at step 4 (one spike: 1/100 / 1 ms over 6 steps = 1.667)."""
    import nengo

    from framework.calibration import layer_means
    from framework.conversion import Conversion, InitialVoltage
    from framework.simulation import SimulationConfig

    model, params = _known_net(tmp_path, [[1.0]], [0.0])
    x = np.full((4, 1, 1), 1.5, np.float32)  # J = 100 × 1.5 = 150
    s = SimulationConfig(n_steps=6, synapse=None, minibatch_size=4, readout_steps=6)
    conv = Conversion(nengo.SpikingRectifiedLinear(), 100.0, {}, 0)
    got = {v: layer_means(model, params, x, s, dataclasses.replace(conv, initial_voltage=v),
                          rate=False)["h"][0] for v in InitialVoltage}
    assert got[InitialVoltage.zero] == 0.0
    assert got[InitialVoltage.half] == pytest.approx(10.0 / 6, rel=1e-5)
    assert 0.0 <= got[InitialVoltage.uniform] <= 2 * 10.0 / 6  # drawn: at most one spike more


def test_calibration_removes_most_of_each_layers_mean_error(tmp_path):
    """A random 4-32-32 ReLU net run as spiking ReLU in 40 steps with a 5 ms synapse: the second
    layer's mean outputs over the read-out window miss the rate network's (its input arrives
    filtered and late); calibrated, its error on the same inputs falls by 40% or more, and the
    first layer's (quantisation only) does not grow."""
    from framework import quiet

    quiet.tensorflow()
    import nengo
    import nengo_dl
    import tensorflow as tf

    from framework.calibration import calibrate, layer_means
    from framework.conversion import Conversion
    from framework.data.base import Data, Task
    from framework.simulation import SimulationConfig

    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((4,))
    h = tf.keras.layers.Dense(32, activation=tf.nn.relu, name="a")(inp)
    h = tf.keras.layers.Dense(32, activation=tf.nn.relu, name="b")(h)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(2)(h))
    conv = Conversion(nengo.SpikingRectifiedLinear(), 400.0, {}, 0)
    with nengo_dl.Simulator(conv.convert(model, None, rate=True).net, progress_bar=False) as sim:
        sim.save_params(str(tmp_path / "params"))
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (64, 4)).astype(np.float32)
    data = Data(name="uniform", task=Task.regression, x_train=x,
                y_train=np.zeros((64, 2), np.float32), x_test=x[:8],
                y_test=np.zeros((8, 2), np.float32), n_outputs=2)
    s = SimulationConfig(n_steps=40, synapse=0.005, minibatch_size=64, readout_steps=20)
    shifts, metrics = calibrate(model, tmp_path / "params", data, s, conv, samples=64)
    assert list(shifts) == ["a", "b"] and shifts["a"].shape == (32,)
    xs = x[:, None, :]
    target = layer_means(model, tmp_path / "params", xs, s, conv, rate=True)
    before = layer_means(model, tmp_path / "params", xs, s, conv, rate=False)
    after = layer_means(model, tmp_path / "params", xs, s,
                        dataclasses.replace(conv, calibration=shifts), rate=False)
    def error(got: dict, layer: str) -> float:
        return float(np.abs(target[layer] - got[layer]).mean())

    assert metrics["conversion/a/calibration_error"] == pytest.approx(error(before, "a"))
    assert error(after, "b") < 0.6 * error(before, "b")
    assert error(after, "a") <= error(before, "a")


def test_choose_window_scores_every_window_then_breaks_ties_by_the_rate_network_then_length():
    """Outputs whose every window is known: the window that scores best wins, a tie goes to the
    read-out closest to the rate network, a tie in both to the shortest window."""
    from framework.calibration import choose_window

    # class 1 samples read class 0 for 6 steps, then class 1 for 4 (the read-out of the last k
    # steps is right for k <= 7); class 0 samples read class 0 throughout
    n, steps = 8, 10
    y = np.array([0, 1] * (n // 2))
    spiking = np.zeros((n, steps, 2))
    spiking[:, :, 0] = 1.0
    spiking[y == 1, 6:] = [0.0, 1.0]
    rate = np.eye(2)[y]
    # k = 1..4 are right and equal the rate network's output; 5..7 right but further from it
    assert choose_window(spiking, rate, y, classification=True) == (1, 1.0)
    # spikes alternating between the classes: an even window averages them to the rate
    # network's 0.6/0.4 (right), an odd one ending on a class-1 step is wrong
    spiking = np.zeros((n, steps, 2))
    spiking[:, 0::2, 0], spiking[:, 1::2, 1] = 1.2, 0.8
    assert choose_window(spiking, np.tile([0.6, 0.4], (n, 1)), np.zeros(n, int), True) == (2, 1.0)
    # regression: a constant target under noise of ±d that cancels over 4 steps; the 4-step
    # window's MSE is 0, a longer one's reaches into an offset onset
    target = np.full((n, 1), 0.5)
    noise = np.array([0.2, -0.1, 0.1, -0.2])
    spiking = np.full((n, steps, 1), 0.5)
    spiking[:, -4:, 0] += noise
    spiking[:, :-4, 0] = 3.0
    k, mse = choose_window(spiking, target, target, classification=False)
    assert (k, mse) == (4, pytest.approx(0.0, abs=1e-12))


def test_a_fitted_read_out_is_chosen_on_training_samples_and_is_what_the_run_reads(tmp_path,
                                                                                monkeypatch):
    """``simulation.readout=fitted`` on a network spiketune trains: the window it chooses does
    not depend on the test split (the same with the test split replaced by NaN); the run's
    spiking score is the mean over that window of the test outputs it simulated; and the same run
    with ``readout=mean`` at that window gives the same score."""
    from helpers import TINY, compose

    import framework.calibration as calibration
    import framework.simulation as simulation
    from framework.pipeline import run
    from framework.progress import Console

    monkeypatch.setenv("SPIKETUNE_CACHE_DIR", str(tmp_path / "cache"))
    chosen, steps_seen, simulated = [], [], []
    real_fit, real_readout = calibration.fit_readout, simulation.readout
    real_simulate = simulation.simulate

    def fit(model, params, data, s, conv, samples):
        blind = dataclasses.replace(data, x_test=np.full_like(data.x_test, np.nan),
                                    y_test=np.full_like(data.y_test, np.nan))
        chosen.append((real_fit(model, params, data, s, conv, samples),
                       real_fit(model, params, blind, s, conv, samples)))
        return chosen[-1][0]

    def readout(y, s):
        steps_seen.append(np.asarray(y))
        return real_readout(y, s)

    def simulate(model, params, data, s, conversion, console):
        simulated.append((data, real_simulate(model, params, data, s, conversion, console)))
        return simulated[-1][1]

    monkeypatch.setattr(calibration, "fit_readout", fit)
    monkeypatch.setattr(simulation, "readout", readout)
    monkeypatch.setattr(simulation, "simulate", simulate)
    args = [*TINY, "analysis=[firing]", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    result = run(compose([*args, "simulation.readout=fitted", "simulation.readout_steps=null"]),
                 console=Console(quiet=True))
    fitted = result.metrics
    (k, found), (k_blind, found_blind) = chosen[0]
    assert k == k_blind and found == found_blind
    assert fitted["conversion/readout_steps"] == k and 1 <= k <= 20
    assert 0 < found["conversion/readout_train_mse"] < 10
    data, sim = simulated[0]
    y = np.concatenate(steps_seen)[: len(sim.sample)]  # (test samples, 20 steps, 2 outputs)
    assert y.shape[1] == 20
    expected = np.mean((y[:, -k:].mean(axis=1) - data.y_test[sim.sample]) ** 2)
    assert fitted["spiking/mse"] == pytest.approx(expected, rel=1e-5)
    steps_seen.clear()
    again = run(compose([*args, "simulation.readout=mean", f"simulation.readout_steps={k}"]),
                console=Console(quiet=True)).metrics
    assert again["spiking/mse"] == pytest.approx(fitted["spiking/mse"], rel=1e-6)
    # the same network, simulated the same way
    np.testing.assert_array_equal(np.concatenate(steps_seen)[: len(sim.sample)], y)
    assert len(chosen) == 1  # mean does not fit
    # each neuron's x stays over the settled last fifth (4 of 20 steps), whatever window the
    # read-out fitted: the same x as a run that reads the last fifth
    run(compose([*args, "simulation.readout=mean", "simulation.readout_steps=4"]),
        console=Console(quiet=True))
    fifth = simulated[-1][1].layers
    for got, want in zip(simulated[0][1].layers, fifth, strict=True):
        np.testing.assert_array_equal(got.x, want.x)
    if k != 4:  # the k-step window's x differs: the test can tell them apart
        assert not np.array_equal(simulated[1][1].layers[0].x, fifth[0].x)
    # the logged model's config replays what the run read: the mean over the chosen window
    import mlflow.artifacts
    import yaml

    from framework.tracking.store import use_uri

    with use_uri(f"sqlite:///{tmp_path / 'mlflow.db'}"):
        local = mlflow.artifacts.download_artifacts(f"runs:/{result.run_id}/model",
                                                    dst_path=str(tmp_path / "model"))
    cfg = yaml.safe_load((Path(local) / "artifacts" / "config.yaml").read_text())
    assert (cfg["simulation"]["readout"], cfg["simulation"]["readout_steps"]) == ("mean", k)
