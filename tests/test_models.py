"""Stage 2 (models) and stage 3's ReLU swap: shapes, layer names, which layers become neurons."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import compose

from framework.config import validate


@pytest.fixture(scope="module")
def tf():
    from framework import quiet

    quiet.tensorflow()
    import tensorflow

    return tensorflow


def built(*overrides):
    from framework import models
    from framework.data import base as datasets

    cfg = validate(compose(list(overrides)))
    data = datasets.load(cfg.dataset, cfg.seed)
    return models.build(cfg.model, data, cfg.seed), data


def test_dense_layers_and_parameter_count(tf):
    model, data = built("model.hidden=[16,4]", "dataset.trials_per_direction=4")
    assert [layer.name for layer in model.layers] == ["input", "hidden0", "hidden1", "output"]
    assert model.input_shape == (None, 8) and model.output_shape == (None, 2)
    assert model.count_params() == (8 * 16 + 16) + (16 * 4 + 4) + (4 * 2 + 2)
    assert model.get_layer("output").activation is tf.keras.activations.linear


def test_conv_shapes_on_digits(tf):
    model, data = built("dataset=digits", "model=conv")
    shapes = {layer.name: layer.output_shape for layer in model.layers}
    assert shapes["input"] == [(None, 8, 8, 1)]
    assert shapes["conv0"] == (None, 8, 8, 16)  # stride 1
    assert shapes["conv1"] == (None, 4, 4, 32)  # stride 2, "same" padding
    assert shapes["hidden"] == (None, 64) and shapes["output"] == (None, 10)


def test_sequence_models_see_one_time_step(tf):
    model, data = built("dataset.sequence=true", "dataset.trials_per_direction=4",
                        "dataset.n_timesteps=9")
    assert data.x_train.shape[1:] == (9, 8)
    assert model.input_shape == (None, 8)  # one bin's channels; NengoDL steps through the bins


def test_every_relu_spelling_becomes_the_neuron_type(tf):
    """tf.nn.relu (built here), activation="relu" (what a saved model loads as), a ReLU layer and
    an Activation("relu") layer all become ensembles of the configured type; linear stays a Node."""
    import nengo

    from framework.conversion import convert, hidden_layers, neuron_layers

    inp = tf.keras.Input(shape=(3,))
    a = tf.keras.layers.Dense(4, activation=tf.nn.relu, name="a")(inp)
    b = tf.keras.layers.Dense(4, activation="relu", name="b")(a)
    c = tf.keras.layers.ReLU(name="c")(tf.keras.layers.Dense(4, name="c_in")(b))
    d = tf.keras.layers.Activation("relu", name="d")(c)
    out = tf.keras.layers.Dense(2, name="out")(d)
    model = tf.keras.Model(inp, out)
    assert [layer.name for layer in hidden_layers(model)] == ["a", "b", "c", "d"]
    lif = nengo.LIF(tau_rc=0.03)
    converter = convert(model, lif, scale_firing_rates=10.0, synapse=None, seed=0)
    layers = neuron_layers(converter, model)
    assert sorted(layers) == ["a", "b", "c", "d"]
    for neurons in layers.values():
        ntype = neurons.ensemble.neuron_type
        assert isinstance(ntype, nengo.LIF) and ntype.tau_rc == 0.03
        assert ntype.amplitude == pytest.approx(0.1)  # 1 / scale_firing_rates


def test_pass_through_layers_do_not_repeat_the_neurons_before_them(tf):
    """Reshape and Flatten hand on their input's Neurons in converter.layers: the neurons are
    analysed once, under the conv layer that made them (digits' conv net has such a Flatten)."""
    import nengo

    from framework.conversion import convert, neuron_layers

    inp = tf.keras.Input(shape=(4, 4, 1))
    a = tf.keras.layers.Conv2D(2, 3, padding="same", activation=tf.nn.relu, name="a")(inp)
    f = tf.keras.layers.Flatten(name="flat")(tf.keras.layers.Reshape((16, 2), name="shape")(a))
    b = tf.keras.layers.Dense(3, activation=tf.nn.relu, name="b")(f)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(2, name="out")(b))
    converter = convert(model, nengo.LIF(), scale_firing_rates=10.0, synapse=None, seed=0)
    assert isinstance(converter.layers[model.get_layer("flat")], nengo.ensemble.Neurons)
    layers = neuron_layers(converter, model)
    assert list(layers) == ["a", "b"]
    assert [n.size_out for n in layers.values()] == [32, 3]


def test_converted_relu_net_computes_the_keras_model(tf):
    """ReLU neurons at any rate scale: the converted network's output is the Keras model's."""
    import nengo
    import nengo_dl

    from framework.conversion import convert

    model, data = built("model.hidden=[16,16]", "dataset.trials_per_direction=4")
    x = data.x_test[:8]
    converter = convert(model, nengo.RectifiedLinear(), 100.0, synapse=None, seed=0)
    with nengo_dl.Simulator(converter.net, minibatch_size=8, progress_bar=False) as sim:
        out = sim.predict({converter.inputs[model.inputs[0]]: x[:, None, :]}, verbose=0)
    got = out[converter.outputs[model.outputs[0]]][:, -1]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5)
    assert np.abs(got).max() > 0.05  # a network that outputs something to compare
