"""The Python API on a NengoDL network spiketune did not build: a plain script's native ensembles,
trained with ``sim.fit``, analysed from the script; the run's numbers are the script's own."""
from __future__ import annotations

import warnings

import nengo
import numpy as np
import pandas as pd
import pytest

from framework.api import analyse
from framework.errors import UserError


def forum_network(seed: int = 0):
    """As a NengoDL user writes it: input → two LIF ensembles → output, with a rate probe."""
    with nengo.Network(seed=seed) as net:
        inp = nengo.Node(np.zeros(2), label="x")
        a = nengo.Ensemble(24, 2, neuron_type=nengo.LIF(), label="a")
        b = nengo.Ensemble(16, 1, neuron_type=nengo.LIF(), label="b")
        out = nengo.Node(size_in=1)
        nengo.Connection(inp, a, synapse=None)
        nengo.Connection(a, b, function=lambda x: x[0] * x[1], synapse=None)
        nengo.Connection(b, out, synapse=None)
        p_out = nengo.Probe(out)
        p_a, p_b = nengo.Probe(a.neurons), nengo.Probe(b.neurons)  # the user's own rate probes
    return net, inp, (a, b), p_out, (p_a, p_b)


def train(sim, inp, p_out, callbacks=(), epochs=3):
    import tensorflow as tf

    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (320, 1, 2)).astype(np.float32)
    sim.compile(optimizer=tf.optimizers.Adam(0.01), loss={p_out: tf.losses.mse})
    sim.fit({inp: x}, {p_out: x[..., :1] * x[..., 1:]}, epochs=epochs, verbose=0,
            callbacks=list(callbacks))


def test_a_plain_nengo_dl_script_gets_its_own_numbers(store):
    import nengo_dl

    warnings.simplefilter("ignore")
    net, inp, (a, b), p_out, (p_a, p_b) = forum_network()
    x_test = np.random.default_rng(2).uniform(-1, 1, (40, 2)).astype(np.float32)
    with nengo_dl.Simulator(net, minibatch_size=20, seed=3, progress_bar=False) as sim:
        start = sim.data[a].gain.copy()
        train(sim, inp, p_out)
        assert np.abs(sim.data[a].gain - start).max() > 1e-3  # the encoders (gains) trained
        held = np.repeat(x_test[:, None, :], 200, axis=1)
        own = sim.predict({inp: held}, verbose=0)  # the script's own probes, same simulator
        out = analyse(sim, {inp: x_test}, {"a": a, "b": b}, n_steps=200, tracking_uri=store,
                      experiment="own", run_name="forum", tags={"user": "choozi"},
                      analyses=["thresholds", "firing"], plots=False, quiet=True)
        expected = {name: sim.data[ens] for name, ens in (("a", a), ("b", b))}
    neurons = out.tables["neurons.csv"]
    for name, probe in (("a", p_a), ("b", p_b)):
        rows = neurons[neurons["layer"] == name].sort_values("neuron")
        np.testing.assert_array_equal(rows["gain"], expected[name].gain)
        np.testing.assert_array_equal(rows["bias"], expected[name].bias)
        # (J_th − bias)/gain in float64; Nengo's sim.data intercepts compute 1 − bias in the
        # bias's float32, so they agree to float32 precision
        gain, bias = expected[name].gain, expected[name].bias.astype(float)
        np.testing.assert_array_equal(rows["x_intercept"], (1.0 - bias) / gain)
        np.testing.assert_allclose(rows["x_intercept"], expected[name].intercepts, rtol=1e-6)
        rates = own[probe].mean(axis=(0, 1))  # per neuron, Hz (amplitude 1)
        per_sample = own[probe].mean(axis=1)
        np.testing.assert_allclose(rows["mean_rate_hz"], per_sample.mean(axis=0), atol=0.01)
        assert rates.max() > 20  # neurons fire: the comparison is not of zeros
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=store).get_run(out.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "forum"
    assert run.data.tags["user"] == "choozi" and "spiketune.version" in run.data.tags
    assert run.data.params["api.ensembles"] == "a,b"
    logged = pd.read_csv(MlflowClient(tracking_uri=store).download_artifacts(out.run_id,
                                                                             "neurons.csv"))
    pd.testing.assert_frame_equal(logged, neurons)
    assert run.data.metrics["firing/mean_rate_hz"] == pytest.approx(
        neurons["mean_rate_hz"].mean())


def test_labels_make_it_a_classification_with_the_classes_analysis(store):
    import nengo_dl

    warnings.simplefilter("ignore")
    net, inp, (a, b), p_out, _ = forum_network()
    x_test = np.random.default_rng(4).uniform(-1, 1, (30, 2)).astype(np.float32)
    labels = (x_test[:, 0] > 0).astype(int) + (x_test[:, 1] > 0).astype(int)  # 3 classes
    with nengo_dl.Simulator(net, minibatch_size=10, seed=3, progress_bar=False) as sim:
        out = analyse(sim, {inp: x_test}, [a], n_steps=50, labels=labels, tracking_uri=store,
                      analyses=["classes"], plots=False, quiet=True)
    assert set(out.tables["neurons.csv"]["layer"]) == {"a"}  # named by the ensemble's label
    assert any(k.startswith("classes/") for k in out.metrics)


@pytest.mark.parametrize("kwargs, match", [
    (dict(inputs={}), "inputs: give at least one"),
    (dict(ensembles=[]), "ensembles: name at least one ensemble"),
    (dict(ensembles=["a"]), r"ensembles\[0\]: expected a nengo.Ensemble"),
    (dict(n_steps=None), "n_steps: needed"),
    (dict(labels=[0, 1]), r"labels: needs one value per sample \(4\)"),
    (dict(options={"nope": {}}), r"options\['nope'\]: no such analysis"),
    (dict(options={"voltage": {"n_neuron": 2}}), r"options\['voltage'\]: .*n_neuron"),
    (dict(analyses=["nope"]), r"analysis\[0\]: no analysis 'nope'|analysis\[0\]: .*nope"),
    (dict(tags={"mlflow.user": "x"}), r"tags\['mlflow.user'\]: .* reserved"),
])
def test_bad_arguments_are_refused_in_one_line_naming_them(kwargs, match, store):
    import nengo_dl

    warnings.simplefilter("ignore")
    net, inp, (a, b), p_out, _ = forum_network()
    args = dict(inputs={inp: np.zeros((4, 2))}, ensembles=[a], n_steps=10, tracking_uri=store,
                quiet=True, plots=False)
    args.update(kwargs)
    with nengo_dl.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(UserError, match=match):
            analyse(sim, **args)


@pytest.mark.slow
def test_the_example_script_runs_and_keeps_every_gain_and_bias_in_range(store):
    """examples/own_network.py, as a user runs it: trained with the callback, analysed with the
    API (voltage included); its run's neurons.csv has every gain and bias in [0, 0.5]."""
    import subprocess
    import sys

    from helpers import REPO
    from mlflow.tracking import MlflowClient

    proc = subprocess.run([sys.executable, str(REPO / "examples" / "own_network.py"), "--uri",
                           store, "--epochs", "3", "--no-plots"], capture_output=True, text=True,
                          timeout=600, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr[-2000:]
    client = MlflowClient(tracking_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name("own-network").experiment_id])
    neurons = pd.read_csv(client.download_artifacts(run.info.run_id, "neurons.csv"))
    assert len(neurons) == 32 and (neurons["threshold"] == 0.25).all()
    for col in ("gain", "bias"):
        assert neurons[col].between(0.0, 0.5).all(), neurons[col].describe()
    assert run.data.metrics["reg/gains/in_range_after"] == 1.0
    assert run.data.metrics["reg/gains/in_range_before"] < 1.0  # the callback had work to do
    volts = pd.read_csv(client.download_artifacts(run.info.run_id, "voltage.csv"))
    assert (volts["threshold"] == 0.25).all() and volts["spike"].sum() > 0
    assert volts.loc[volts["spike"] == 0, "voltage"].max() < 0.25


def test_a_converted_keras_layer_from_the_users_own_converter(store):
    """The issue's own script: a Keras ReLU net converted with nengo_dl.Converter (LIF, scale
    100), trained with sim.fit; the converted layer's numbers are sim.data's and its probe's."""
    import nengo_dl
    import tensorflow as tf

    warnings.simplefilter("ignore")
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((6,))
    hidden = tf.keras.layers.Dense(32, activation=tf.nn.relu)(inp)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(8)(hidden))
    conv = nengo_dl.Converter(model, swap_activations={tf.nn.relu: nengo.LIF()},
                              scale_firing_rates=100)
    neurons = conv.layers[hidden]
    with conv.net:
        own_probe = nengo.Probe(neurons)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, 1, 6)).astype(np.float32)
    x_test = rng.uniform(-1, 1, (20, 6)).astype(np.float32)
    with nengo_dl.Simulator(conv.net, minibatch_size=10, seed=2, progress_bar=False) as sim:
        sim.compile(optimizer=tf.optimizers.Adam(0.01), loss={conv.outputs[model.output]: "mse"})
        sim.fit({conv.inputs[inp]: x}, {conv.outputs[model.output]: np.tile(x[..., :4], (1, 1, 2))},
                epochs=2, verbose=0)
        own = sim.predict({conv.inputs[inp]: np.repeat(x_test[:, None], 150, axis=1)},
                          verbose=0)[own_probe]
        out = analyse(sim, {conv.inputs[inp]: x_test}, {"hidden0": neurons}, n_steps=150,
                      tracking_uri=store, analyses=["thresholds"], plots=False, quiet=True)
        built = sim.data[neurons.ensemble]
    rows = out.tables["neurons.csv"].sort_values("neuron")
    np.testing.assert_array_equal(rows["gain"], built.gain)
    np.testing.assert_array_equal(rows["bias"], built.bias)
    rates = own.mean(axis=1).mean(axis=0) / 0.01  # output ÷ amplitude (1/scale) = Hz
    np.testing.assert_allclose(rows["mean_rate_hz"], rates, atol=0.01)
    assert rates.max() > 20
