"""Stage 2, model: ``build(model_cfg, data, seed) -> keras.Model`` for the model the config names.

Hidden layers use ``tf.nn.relu``, which the conversion stage swaps for the configured neuron type;
the output layer is linear (logits for classification). Native Nengo models (``ensemble``) are not
Keras models; :mod:`framework.networks.ensemble` runs them.
"""
from __future__ import annotations

from framework.registry import Registry

MODELS: Registry = Registry("model")


def build(model_cfg, data, seed: int):
    """The Keras model the ``model`` node describes, for ``data``'s input and output shapes."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    return MODELS.get(model_cfg.name, "model")(model_cfg, data)


def _input_shape(data):
    # Sequences (trials × time × channels) are fed to NengoDL one time step per step: the Keras
    # model sees one step's channels.
    return data.input_shape[1:] if data.sequence else data.input_shape


@MODELS.register("dense")
def dense(cfg, data):
    """Input → ``hidden`` ReLU layers → linear output (flattening image inputs first)."""
    import tensorflow as tf

    inp = tf.keras.Input(shape=_input_shape(data), name="input")
    h = tf.keras.layers.Flatten(name="flatten")(inp) if len(_input_shape(data)) > 1 else inp
    for i, n in enumerate(cfg.hidden):
        h = tf.keras.layers.Dense(n, activation=tf.nn.relu, name=f"hidden{i}")(h)
    out = tf.keras.layers.Dense(data.n_outputs, name="output")(h)
    return tf.keras.Model(inp, out, name="dense")


@MODELS.register("conv")
def conv(cfg, data):
    """Conv (3×3, ReLU) layers, the second and later with stride 2, a dense ReLU layer, a linear
    output."""
    import tensorflow as tf

    shape = _input_shape(data)
    if len(shape) == 1:  # flat features: treat them as a 1-row image
        shape = (1, shape[0], 1)
    inp = tf.keras.Input(shape=data.input_shape if len(data.input_shape) == 3 else shape,
                         name="input")
    h = inp
    for i, f in enumerate(cfg.filters):
        h = tf.keras.layers.Conv2D(f, cfg.kernel_size, strides=1 if i == 0 else 2, padding="same",
                                   activation=tf.nn.relu, name=f"conv{i}")(h)
    h = tf.keras.layers.Flatten(name="flatten")(h)
    h = tf.keras.layers.Dense(cfg.dense, activation=tf.nn.relu, name="hidden")(h)
    out = tf.keras.layers.Dense(data.n_outputs, name="output")(h)
    return tf.keras.Model(inp, out, name="conv")


@MODELS.register("keras_file")
def keras_file(cfg, data):
    """A user's saved model, loaded in safe mode (see :mod:`framework.keras_io`)."""
    from framework.keras_io import load_model

    return load_model(cfg, data)


def hidden_layers(model) -> list:
    """The Keras layers whose activation the conversion turns into neurons, in order."""
    import tensorflow as tf

    relus = (tf.nn.relu, tf.keras.activations.relu)
    return [layer for layer in model.layers if getattr(layer, "activation", None) in relus
            or isinstance(layer, tf.keras.layers.ReLU)]
