"""``training.gains``: kept in range where gains train (native ensembles, through
``framework.api.range_callback`` in a user's own ``sim.fit``), refused in one line where they do
not (a converted layer's gain is its firing-rate scale)."""
from __future__ import annotations

import warnings

import nengo
import numpy as np
import pytest
from helpers import compose
from test_api import forum_network, train

from framework.api import range_callback
from framework.config import validate
from framework.errors import UserError
from framework.regularizers import GainRange
from framework.training import TrainingConfig


def test_gains_is_a_range_of_the_training_node():
    ranges = TrainingConfig().ranges()
    assert any(isinstance(r, GainRange) for r in ranges)
    assert GainRange().bounds() == ("low", 0.0, 0.5)


@pytest.mark.parametrize("overrides, match", [
    (["training.gains.enabled=true"],
     r"^training.gains: a converted layer's gain is its firing-rate scale.*"
     r"simulation.scale_firing_rates or conversion\.\*"),
    (["training.gains.high=0.3"], r"^training.gains.high: set, but training.gains is not enabled"),
    (["training.gains.enabled=true", "training.gains.low=1", "training.gains.high=0.5"],
     r"^training.gains.low: must be below the upper bound"),
])
def test_the_cli_refuses_in_one_line(overrides, match):
    with pytest.raises(UserError, match=match) as info:
        validate(compose(overrides))
    assert "\n" not in str(info.value)


def test_the_callback_keeps_gains_and_biases_in_range(store):
    import nengo_dl

    warnings.simplefilter("ignore")
    net, inp, (a, b), p_out, _ = forum_network()
    with nengo_dl.Simulator(net, minibatch_size=32, seed=3, progress_bar=False) as sim:
        cb = range_callback(sim, [a, b], gains=(0.0, 0.5), biases=(0.0, 0.5))
        train(sim, inp, p_out, callbacks=[cb], epochs=1)
        enc0 = sim.model.params[a].encoders
        for ens in (a, b):
            data = sim.data[ens]
            assert data.gain.min() >= 0 and data.gain.max() <= 0.5
            assert data.bias.min() >= 0 and data.bias.max() <= 0.5
        # directions kept: the trained encoders are the build ones (a LIF gain above 0.5 is
        # only rescaled) up to what the optimiser turned them
        cos = np.sum(sim.data[a].encoders * enc0, axis=1)
        assert cos.min() > 0.9
    stats = cb.ranges.stats
    assert stats["reg/gains/in_range_before"] < 0.1  # Nengo's default gains are above 0.5
    assert stats["reg/gains/in_range_after"] == 1.0 and stats["reg/biases/in_range_after"] == 1.0
    assert stats["reg/gains/a/in_range_after"] == 1.0


def test_a_converted_layers_gain_is_refused_in_one_line():
    import nengo_dl
    import tensorflow as tf

    warnings.simplefilter("ignore")
    inp = tf.keras.Input((4,))
    hidden = tf.keras.layers.Dense(8, activation=tf.nn.relu)(inp)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(2)(hidden))
    conv = nengo_dl.Converter(model, swap_activations={tf.nn.relu: nengo.LIF()})
    with nengo_dl.Simulator(conv.net, progress_bar=False) as sim:
        with pytest.raises(UserError, match=r"range_callback gains: .*simulation.scale_firing_"
                                            r"rates or conversion\.\*"):
            range_callback(sim, [conv.layers[hidden]], gains=(0.0, 0.5))
        cb = range_callback(sim, [conv.layers[hidden]], biases=(0.0, 0.5))  # biases do train
        assert 0.0 <= cb.ranges.stats["reg/biases/in_range_before"] <= 1.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(gains=(0.5, 0.1)), "range_callback gains: low must be below high"),
    (dict(), "range_callback: give gains"),
])
def test_bad_ranges_name_the_argument(kwargs, match):
    import nengo_dl

    warnings.simplefilter("ignore")
    net, inp, (a, b), p_out, _ = forum_network()
    with nengo_dl.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(UserError, match=match):
            range_callback(sim, [a], **kwargs)
